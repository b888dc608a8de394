"""Declarative conv1d cases shared by the tests: one dict per awkward combination.

Each case is data (shapes and arguments); the tests turn it into arrays. Keys:
``N`` (None for unbatched input), ``C``, ``L``, ``O``, ``K`` and the conv1d
keyword arguments ``stride``, ``padding``, ``dilation``, ``groups``.
"""

from __future__ import annotations

import zlib

import numpy as np
import oracles

BASE = {"N": 2, "C": 4, "L": 12, "O": 6, "K": 3}

CASES = {
    "basic": {},
    "unbatched": {"N": None, "C": 3, "O": 5, "padding": 1},
    "stride2_pad1": {"L": 13, "stride": 2, "padding": 1},
    "stride_gt_kernel": {"L": 17, "K": 2, "stride": 5},
    "tuple_args": {"L": 15, "stride": (2,), "padding": (1,), "dilation": (2,)},
    "valid": {"padding": "valid"},
    "same_odd_kernel": {"padding": "same"},
    "same_even_kernel": {"K": 4, "padding": "same"},
    "same_even_kernel_odd_dilation": {"K": 4, "dilation": 3, "padding": "same"},
    "same_even_kernel_even_dilation": {"K": 4, "dilation": 2, "padding": "same"},
    "dilation3": {"dilation": 3, "padding": 2},
    "groups2": {"groups": 2},
    "depthwise": {"O": 4, "groups": 4},
    # K >= 5 depthwise with stride 1 takes the band-matrix path (uscale_ref.banded):
    # several tiles, a window reaching past a 16-long tile, an even 'same' kernel.
    "depthwise_k5": {"O": 4, "groups": 4, "K": 5, "L": 40, "padding": 2},
    "depthwise_dilated_same": {
        "N": None,
        "C": 3,
        "O": 3,
        "K": 6,
        "L": 50,
        "dilation": 3,
        "groups": 3,
        "padding": "same",
    },
    "depthwise_wide_span": {
        "C": 2,
        "O": 2,
        "K": 9,
        "L": 70,
        "dilation": 3,
        "groups": 2,
        "padding": 12,
    },
    "channel_multiplier": {"C": 3, "O": 6, "groups": 3},
    "one_output_per_group": {"C": 6, "O": 2, "groups": 2},
    "length1_output": {"L": 5, "K": 5},
    "padding_longer_than_input": {"L": 4, "padding": 5},
    "kernel1_stride2": {"K": 1, "stride": 2},
    "everything": {
        "L": 23,
        "C": 6,
        "O": 9,
        "K": 4,
        "stride": 3,
        "padding": 2,
        "dilation": 2,
        "groups": 3,
    },
    "unbatched_grouped_same": {"N": None, "C": 4, "O": 8, "K": 2, "groups": 2, "padding": "same"},
    # stride = K d: the taps of consecutive outputs tile the input ("patchify").
    "stride_equals_kernel": {"L": 14, "K": 3, "stride": 3, "padding": 2},
    "stride_equals_span": {"L": 17, "K": 2, "dilation": 2, "stride": 4, "padding": 1, "groups": 2},
}

DTYPES = ["float16", "float32", "float64", "complex64", "complex128"]

CONV_KEYS = ("stride", "padding", "dilation", "groups")


def spec(case_id: str) -> dict:
    return {**BASE, **CASES[case_id]}


def conv_kwargs(case: dict) -> dict:
    return {key: case[key] for key in CONV_KEYS if key in case}


def make_inputs(case_id: str, dtype, bias: bool = True):
    """Deterministic arrays (x, w, b or None, grad_output) for a case, as NumPy arrays."""
    case = spec(case_id)
    rng = np.random.default_rng(zlib.crc32(f"{case_id}-{dtype}-{bias}".encode()))
    groups = case.get("groups", 1)
    batch = () if case["N"] is None else (case["N"],)
    x = oracles.random_array(rng, (*batch, case["C"], case["L"]), dtype)
    w = oracles.random_array(rng, (case["O"], case["C"] // groups, case["K"]), dtype)
    b = oracles.random_array(rng, (case["O"],), dtype) if bias else None
    geo = geometry(case)
    out_length = geo.out_length(case["L"], case["K"])
    g = oracles.random_array(rng, (*batch, case["O"], out_length), dtype)
    return x, w, b, g


def geometry(case: dict) -> oracles.Geometry:
    return oracles.Geometry.resolve(case["K"], **conv_kwargs(case))
