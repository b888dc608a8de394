"""A kernel that casts its own operands is held to each format's overflow convention.

The kernels here cast with ml_dtypes (the OCP formats) and uscale_ref.formats (the
unit_scaling ones), not with the module under test; their mistakes are written out by
hand: saturating where NaN belongs, NaN where saturation belongs, no cast at all.
"""

from __future__ import annotations

import numpy as np
import pytest

import uscale_ref
from uscale_ref.formats import FORMATS, round_to
from uscale_ref.golden import CaseSpec
from uscale_ref.testing import assert_conv1d
from uscale_ref.testing.overflow import (
    OverflowProblem,
    cast,
    convention_of,
    judge_overflow,
    overflow_problem,
)

ml_dtypes = pytest.importorskip("ml_dtypes")

OCP = {"input": "float8_e4m3fn", "weight": "float8_e4m3fn", "grad_output": "float8_e5m2"}
UNIT_SCALING = {"input": "unit_scaling_e4m3", "weight": "unit_scaling_e4m3",
                "grad_output": "unit_scaling_e5m2"}  # fmt: skip
SMALL = {"batch_size": 2, "in_channels": 8, "out_channels": 8, "length": 32, "kernel_size": 3}


def _own_cast(x, fmt):
    """The format's own cast, from a library other than the module under test."""
    if fmt.startswith("float8_"):
        return x.astype(getattr(ml_dtypes, fmt)).astype(np.float32)
    return round_to(x, fmt)


def _saturating(x, fmt):
    largest = np.float32(FORMATS[fmt].largest)
    return _own_cast(np.clip(x, -largest, largest), fmt)


def _giving_nan(x, fmt):
    casted = _own_cast(x, fmt)
    return np.where(np.abs(x) > FORMATS[fmt].largest * 1.0625, np.float32(np.nan), casted)


def _not_cast(x, fmt):
    return x


def _kernel(formats, cast_with):
    """A float32 kernel that casts each operand with ``cast_with(x, format)``."""

    def narrow(values, name):
        return cast_with(np.asarray(values, dtype=np.float32), formats[name]).astype(np.float32)

    def forward(x, w, b, **kwargs):
        with np.errstate(all="ignore"):
            y = uscale_ref.conv1d(narrow(x, "input"), narrow(w, "weight"), b, **kwargs)
        return np.asarray(y, dtype=np.float32)

    def backward(g, x, w, b, **kwargs):
        with np.errstate(all="ignore"):
            grads = uscale_ref.conv1d_backward(
                narrow(g, "grad_output"), narrow(x, "input"), narrow(w, "weight"), b, **kwargs
            )
        return tuple(np.asarray(a, dtype=np.float32) for a in grads)

    return forward, backward


def _run(formats, cast_with):
    forward, backward = _kernel(formats, cast_with)
    case = CaseSpec("float32", **SMALL, **{f"{k}_format": v for k, v in formats.items()})
    return assert_conv1d(forward, backward, cases=[case], drawn=0, cast=True)


@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "float8_e5m2"])
def test_cast_follows_ml_dtypes(fmt):
    values = np.array([1000.0, -1000.0, 460.0, 470.0, 1e5, -7e4, 6e4, 61440.0, 0.3],
                      dtype=np.float32)  # fmt: skip
    expected = values.astype(getattr(ml_dtypes, fmt)).astype(np.float64)
    np.testing.assert_array_equal(cast(values, fmt), expected)


def test_the_formats_conventions():
    assert convention_of("float8_e4m3fn") == "nan"
    assert convention_of("float8_e5m2") == "inf"
    assert convention_of("float16") == "inf"
    assert convention_of("unit_scaling_e4m3") == "saturate"
    assert cast(np.array([-500.0, 500.0]), "unit_scaling_e4m3").tolist() == [-240.0, 240.0]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_problem_reaches_beyond_the_ranges(dtype):
    problem = overflow_problem(dtype, OCP)
    assert isinstance(problem, OverflowProblem)
    for name, fmt in OCP.items():
        assert np.max(np.abs(problem.inputs[name])) > FORMATS[fmt].largest
    assert np.isnan(problem.expected["output"]).any()  # E4M3's overflow is NaN
    assert np.isinf(problem.expected["grad_bias"]).any()  # E5M2's is inf
    saturating = overflow_problem(dtype, UNIT_SCALING)
    assert not np.isnan(saturating.expected["output"]).any()


@pytest.mark.parametrize("formats", [OCP, UNIT_SCALING], ids=["ocp", "unit_scaling"])
def test_a_kernel_with_the_formats_conventions_passes(formats):
    report = _run(formats, _own_cast)
    assert report.cases == 2  # the case, and its overflow problem


@pytest.mark.parametrize(
    ("formats", "cast_with", "words"),
    [
        (OCP, _saturating, "values beyond float8_e4m3fn's range (448) saturated to ± its "
         "largest where the format gives NaN; values beyond float8_e5m2's range (57344) "
         "saturated to ± its largest where the format gives ±inf"),
        (UNIT_SCALING, _giving_nan, "values beyond unit_scaling_e4m3's range (240) gave NaN "
         "where the format saturates"),
        (OCP, _not_cast, "values beyond float8_e4m3fn's range (448) kept as they are (the "
         "operands not cast at all) where the format gives NaN"),
    ],
    ids=["saturates-where-nan", "nan-where-saturates", "no-cast"],
)  # fmt: skip
def test_a_wrong_convention_fails_and_is_named(formats, cast_with, words):
    with pytest.raises(AssertionError) as failure:
        _run(formats, cast_with)
    text = str(failure.value)
    assert "1 of 2 cases failed" in text
    assert "overflow:float32_" in text
    assert f"likely cause: {words}" in text


def test_only_the_wrong_format_is_named():
    """E4M3 cast right (NaN), E5M2 saturated: the one format named."""

    def mixed(x, fmt):
        return _saturating(x, fmt) if fmt == "float8_e5m2" else _own_cast(x, fmt)

    problem = overflow_problem("float32", OCP)
    forward, backward = _kernel(OCP, mixed)
    x = problem.inputs
    results = dict(zip(("grad_input", "grad_weight", "grad_bias"),
                       backward(x["grad_output"], x["input"], x["weight"], x["bias"],
                                **problem.kwargs), strict=True))  # fmt: skip
    results["output"] = forward(x["input"], x["weight"], x["bias"], **problem.kwargs)
    finding = judge_overflow(problem, results)
    assert finding is not None
    assert finding.cause == (
        "values beyond float8_e5m2's range (57344) saturated to ± its largest where the "
        "format gives ±inf"
    )
    assert "where -inf belongs" in finding.differences or "where +inf belongs" in (
        finding.differences
    )


def test_cast_needs_a_case_with_formats():
    forward, _ = _kernel(OCP, _own_cast)
    with pytest.raises(ValueError, match="cast=True: no chosen case names operand formats"):
        assert_conv1d(forward, cases=[CaseSpec("float32", **SMALL)], drawn=0, cast=True)
    with pytest.raises(TypeError, match="cast must be True or False"):
        assert_conv1d(forward, cases=[CaseSpec("float32", **SMALL)], drawn=0, cast="yes")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dtype must be one of"):
        overflow_problem("float64", OCP)
    with pytest.raises(ValueError, match=r"formats\['input'\] must be one of"):
        overflow_problem("float32", {"input": "float8"})
    with pytest.raises(ValueError, match="operand must be input, weight or grad_output"):
        overflow_problem("float32", {"bias": "float8_e4m3fn"})
    with pytest.raises(ValueError, match="no operand format narrower in range than float16"):
        overflow_problem("float16", {"input": "bfloat16"})
    with pytest.raises(ValueError, match="fmt must be one of"):
        cast(np.ones(2), "e4m3")
    with pytest.raises(ValueError, match="convention must be one of"):
        cast(np.ones(2), "float8_e4m3fn", "wrap")
    problem = overflow_problem("float32", OCP)
    with pytest.raises(ValueError, match=r"results\['output'\] has shape \(3,\)"):
        judge_overflow(problem, {"output": np.zeros(3)})
    with pytest.raises(ValueError, match="'bias' is none of"):
        judge_overflow(problem, {"bias": np.zeros(4)})


def test_a_kernel_that_refuses_the_problem_fails_it_with_its_own_words():
    forward, backward = _kernel(OCP, _own_cast)

    def refusing(x, w, b, **kwargs):
        if np.max(np.abs(x)) > 100:
            raise FloatingPointError("input out of range")
        return forward(x, w, b, **kwargs)

    def two_grads(g, x, w, b, **kwargs):
        return backward(g, x, w, b, **kwargs)[:2]

    case = CaseSpec("float32", **SMALL, **{f"{k}_format": v for k, v in OCP.items()})
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(refusing, cases=[case], drawn=0, cast=True)
    assert "1 of 2 cases failed" in str(failure.value)  # the case's operands are in range
    assert "the kernel raised FloatingPointError: input out of range" in str(failure.value)
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(forward, two_grads, cases=[case], drawn=0, cast=True)
    lines = [line for line in str(failure.value).splitlines() if line.startswith("overflow:")]
    assert lines and "backward returned tuple of length 2" in lines[0]


def test_a_forward_alone_names_only_the_formats_it_reads():
    forward, _ = _kernel(OCP, _saturating)
    case = CaseSpec("float32", **SMALL, **{f"{k}_format": v for k, v in OCP.items()})
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(forward, cases=[case], drawn=0, cast=True)
    cause = next(line for line in str(failure.value).splitlines() if "likely cause" in line)
    assert cause.endswith(
        "values beyond float8_e4m3fn's range (448) saturated to ± its largest where the "
        "format gives NaN"
    ), cause
