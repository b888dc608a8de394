"""Hypothesis draws consistent argument sets; the loop oracle judges every one."""

from __future__ import annotations

import numpy as np
import oracles
import pytest
import reference
from hypothesis import given, settings
from hypothesis import strategies as st
from tolerance import assert_within_rounding

import uscale_ref
import uscale_ref.textbook

DTYPES = ["float16", "float32", "float64", "complex64", "complex128"]


@st.composite
def conv_problems(draw):
    groups = draw(st.integers(1, 3))
    fan_in = draw(st.integers(1, 6))
    out_per_group = draw(st.integers(1, 3))
    kernel = draw(st.integers(1, 5))
    dilation = draw(st.integers(1, 3))
    padding_form = draw(st.sampled_from(["int", "tuple", "valid", "same"]))
    stride = 1 if padding_form == "same" else draw(st.integers(1, 6))
    pad = draw(st.integers(0, 4))
    padding = {"int": pad, "tuple": (pad,), "valid": "valid", "same": "same"}[padding_form]
    if padding_form == "tuple" and draw(st.booleans()):
        stride, dilation = (stride,), (dilation,)
    geo = oracles.Geometry.resolve(kernel, stride, padding, dilation, groups)
    reach = geo.dilation * (kernel - 1) + 1
    min_length = max(1, reach - geo.pad_left - geo.pad_right)
    length = draw(st.integers(min_length, min_length + 12))
    batch = draw(st.one_of(st.none(), st.integers(1, 3)))
    return {
        "batch": batch,
        "in_channels": groups * fan_in,
        "out_channels": groups * out_per_group,
        "kernel": kernel,
        "length": length,
        "bias": draw(st.booleans()),
        "dtype": draw(st.sampled_from(DTYPES)),
        "constraint": draw(st.sampled_from(uscale_ref.constraints.CONSTRAINT_NAMES)),
        "scale_power": draw(st.sampled_from([(0.5, 0.5, 0.5), (1.0, 0.0, 0.25)])),
        "kwargs": {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups},
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@pytest.mark.parametrize("impl", [uscale_ref, uscale_ref.textbook], ids=["kernels", "textbook"])
@settings(max_examples=1000)
@given(conv_problems())
def test_random_problems_match_loop_oracle(impl, problem):
    rng = np.random.default_rng(problem["seed"])
    dtype, kwargs = problem["dtype"], problem["kwargs"]
    batch = () if problem["batch"] is None else (problem["batch"],)
    groups = kwargs["groups"]
    x = oracles.random_array(rng, (*batch, problem["in_channels"], problem["length"]), dtype)
    w = oracles.random_array(
        rng, (problem["out_channels"], problem["in_channels"] // groups, problem["kernel"]), dtype
    )
    b = oracles.random_array(rng, (problem["out_channels"],), dtype) if problem["bias"] else None
    options = {"constraint": problem["constraint"], "scale_power": problem["scale_power"]}

    y = impl.conv1d(x, w, b, **kwargs, **options)
    geo = oracles.Geometry.resolve(problem["kernel"], **kwargs)
    assert y.shape[-1] == geo.out_length(problem["length"], problem["kernel"])
    g = oracles.random_array(rng, y.shape, dtype)
    grads = impl.conv1d_backward(g, x, w, b, **kwargs, **options)

    expected = reference.exact(x, w, b, g, geo, **options)
    results = {"output": y, **grads._asdict()}
    for name, (exact, magnitude, terms) in expected.items():
        assert results[name].dtype == np.dtype(dtype)
        assert_within_rounding(results[name], exact, magnitude, dtype, terms, what=name)
    assert (grads.grad_bias is None) == (b is None)
