"""Fused-cast kernels held to the formats' overflow conventions: right ones pass, wrong ones
are named.

Each seed draws the overflow problem of :mod:`uscale_ref.testing.overflow` anew (other
operands, the values beyond the ranges elsewhere) for the OCP recipe (E4M3 input and
weight, E5M2 grad_output) and unit_scaling's (its own E4M3 and E5M2), with bfloat16,
float16 and float32 results. The kernels cast in float32 by hand-written rules (not
the module's): each format's own convention, or a mistake of one (saturation where
NaN or inf belongs, NaN or inf where saturation belongs, no cast at all), then
convolve in float64 and round once.

    python benchmarks/overflow_calibration.py [--seeds 20] [--markdown]
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Callable
from typing import Any

import numpy as np

import uscale_ref
from uscale_ref.formats import FORMATS, round_to
from uscale_ref.testing.overflow import judge_overflow, overflow_problem

OCP = {"input": "float8_e4m3fn", "weight": "float8_e4m3fn", "grad_output": "float8_e5m2"}
UNIT_SCALING = {"input": "unit_scaling_e4m3", "weight": "unit_scaling_e4m3",
                "grad_output": "unit_scaling_e5m2"}  # fmt: skip
DTYPES = ("bfloat16", "float16", "float32")


def _beyond(x: np.ndarray, fmt: str) -> np.ndarray:
    """Where rounding to ``fmt`` leaves its range (the half step above the largest)."""
    spec = FORMATS[fmt]
    step = spec.largest * 2.0**-spec.mantissa_bits / (2 - 2.0**-spec.mantissa_bits)
    return ~(np.abs(x) < spec.largest + step / 2)


def own(x: np.ndarray, fmt: str) -> np.ndarray:
    return round_to(x, fmt)


def saturating(x: np.ndarray, fmt: str) -> np.ndarray:
    largest = FORMATS[fmt].largest
    return round_to(np.clip(x, -largest, largest), fmt)


def nan_beyond(x: np.ndarray, fmt: str) -> np.ndarray:
    return np.where(_beyond(x, fmt), np.nan, round_to(np.where(_beyond(x, fmt), 0, x), fmt))


def inf_beyond(x: np.ndarray, fmt: str) -> np.ndarray:
    inside = round_to(np.where(_beyond(x, fmt), 0, x), fmt)
    return np.where(_beyond(x, fmt), np.copysign(np.inf, x), inside)


def not_cast(x: np.ndarray, fmt: str) -> np.ndarray:
    return x


def only(target: str, wrong: Callable[..., Any]) -> Callable[..., Any]:
    """``wrong`` for the format ``target``, the format's own cast for the others."""

    def casting(x: np.ndarray, fmt: str) -> np.ndarray:
        return wrong(x, fmt) if fmt == target else own(x, fmt)

    return casting


# (name, formats, cast)
KERNELS: list[tuple[str, dict[str, str], Callable[..., Any]]] = [
    ("OCP formats, their own conventions", OCP, own),
    ("unit_scaling formats, their own conventions", UNIT_SCALING, own),
    ("OCP: saturation where NaN and inf belong", OCP, saturating),
    ("OCP: E4M3 saturated where NaN belongs", OCP, only("float8_e4m3fn", saturating)),
    ("OCP: E4M3 inf where NaN belongs", OCP, only("float8_e4m3fn", inf_beyond)),
    ("OCP: E5M2 NaN where inf belongs", OCP, only("float8_e5m2", nan_beyond)),
    ("unit_scaling: NaN where saturation belongs", UNIT_SCALING, nan_beyond),
    ("unit_scaling: inf where saturation belongs", UNIT_SCALING, inf_beyond),
    ("OCP: operands not cast", OCP, not_cast),
]


def results(problem: Any, casting: Callable[..., Any]) -> dict[str, np.ndarray]:
    x = {}
    for name, value in problem.inputs.items():
        wide = np.asarray(value, dtype=np.float64)
        fmt = problem.formats.get(name)
        x[name] = wide if fmt is None else casting(wide.astype(np.float32), fmt).astype(np.float64)
    with np.errstate(all="ignore"):
        out = {"output": uscale_ref.conv1d(x["input"], x["weight"], x["bias"], **problem.kwargs)}
        grads = uscale_ref.conv1d_backward(x["grad_output"], x["input"], x["weight"], x["bias"],
                                           **problem.kwargs)  # fmt: skip
        out.update(zip(("grad_input", "grad_weight", "grad_bias"), grads, strict=True))
        return {k: np.asarray(round_to(np.asarray(v), "bfloat16") if problem.dtype == "bfloat16"
                              else np.asarray(v).astype(problem.dtype))
                for k, v in out.items()}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    passed: dict[str, int] = collections.Counter()
    causes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    runs = 0
    for seed in range(args.seeds):
        for dtype in DTYPES:
            runs += 1
            problems = {id(f): overflow_problem(dtype, f, seed) for f in (OCP, UNIT_SCALING)}
            for name, formats, casting in KERNELS:
                problem = problems[id(formats)]
                finding = judge_overflow(problem, results(problem, casting))
                if finding is None:
                    passed[name] += 1
                else:
                    causes[name][finding.cause] += 1
    if args.markdown:
        print("| kernel | passes | cause named when it fails |")
        print("| --- | --- | --- |")
    for name, *_ in KERNELS:
        named = "; ".join(f'"{cause}" ({count})' for cause, count in causes[name].most_common())
        if args.markdown:
            print(f"| {name} | {passed[name]} of {runs} | {named or '—'} |")
        else:
            print(f"{name}: passes {passed[name]} of {runs}; {named}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
