"""Every mistake of the catalogue is named right, in every dtype it can happen in; correct
kernels get no cause (they pass)."""

from __future__ import annotations

import re

import pytest
from catalogue import ENTRIES

from uscale_ref import verdict
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build
from uscale_ref.verdict.diagnosis import NO_CAUSE, diagnose

DTYPES = ("float32", "bfloat16", "float16", "complex64", "float64")
GEOMETRIES = {
    "plain": {"batch_size": 3, "in_channels": 32, "length": 320, "out_channels": 32,
              "kernel_size": 5, "padding": 2},
    "groups": {"batch_size": 2, "in_channels": 32, "length": 128, "out_channels": 32,
               "kernel_size": 3, "padding": 1, "groups": 4},
    "strided": {"batch_size": 2, "in_channels": 16, "length": 200, "out_channels": 16,
                "kernel_size": 3, "stride": 2, "dilation": 3, "padding": 3},
    "wide": {"batch_size": 2, "in_channels": 16, "length": 64, "out_channels": 192,
             "kernel_size": 3, "padding": 1},
}  # fmt: skip
_CASES: dict[tuple[str, str], Fixture] = {}


def case_of(dtype: str, geometry: str) -> Fixture:
    key = (dtype, geometry)
    if key not in _CASES:
        spec = CaseSpec(dtype=dtype, suite="catalogue", **GEOMETRIES[geometry])
        arrays, metadata = build(spec)
        _CASES[key] = Fixture(spec.id, metadata, arrays)
    return _CASES[key]


def _params():
    for entry in ENTRIES:
        for dtype in DTYPES:
            if dtype not in entry.dtypes:
                continue
            for geometry in GEOMETRIES:
                yield pytest.param(entry, dtype, geometry, id=f"{entry.name}-{dtype}-{geometry}")


PARAMS = list(_params())


@pytest.mark.parametrize(("entry", "dtype", "geometry"), PARAMS)
def test_each_mistake_is_named_right(entry, dtype, geometry):
    case = case_of(dtype, geometry)
    if not entry.applies(case):
        pytest.skip("the mistake cannot happen in this case")
    results = entry.make(case)
    judged = verdict.judge(case, results)
    if judged.passed and dtype in entry.subtle:
        pytest.skip(f"{entry.name}: below what a case this small shows in {dtype}")
    assert not judged.passed, f"{entry.name}: not caught"
    cause = diagnose(case, results, [r.name for r in judged.failing])
    if cause.startswith(NO_CAUSE) and dtype in entry.subtle:
        pytest.skip(f"{entry.name}: too small a case to tell in {dtype} ({cause})")
    assert NO_CAUSE not in cause, cause
    for words in entry.named:
        assert words in cause, cause
    if entry.factor is not None:
        stated, spread = stated_factor(cause)
        assert abs(stated - entry.factor) <= 4 * spread + 0.02 * entry.factor, cause


def stated_factor(cause: str) -> tuple[float, float]:
    """The ``1 + x ± y`` a cause states: (x, y)."""
    found = re.search(r"factor 1 ([+-]) ([0-9.e+-]+) ± ([0-9.e+-]+)", cause)
    assert found, cause
    sign = 1.0 if found.group(1) == "+" else -1.0
    return sign * float(found.group(2)), float(found.group(3))


@pytest.mark.parametrize("bits", range(8, 24))
def test_an_accumulators_width_is_named_within_a_bit(bits):
    # Running sums kept in `bits` significant bits, 8 to 23: where the verdict sees them,
    # the cause states the width within one bit.
    from catalogue import _running

    case = case_of("float32", "plain")
    results = _running(bits)(case)
    judged = verdict.judge(case, results)
    if judged.passed:
        assert bits >= 20, f"a {bits}-bit accumulator passed"
        return
    cause = diagnose(case, results, [r.name for r in judged.failing])
    stated = [int(m) for m in re.findall(r"keep (?:about )?(\d+) significant bits", cause)]
    assert stated, cause
    assert all(abs(width - bits) <= 1 for width in stated), cause


def test_long_sums_of_a_compact_fixture_are_named_from_worst_and_spread_positions():
    # grad_weight sums N L_out = 16384 terms: a few sampled positions only, half of them
    # the worst (all zeros where the last tap was dropped) and half at random (right),
    # so that "the results are zeros" cannot pass for "the last tap left out".
    import numpy as np

    import uscale_ref

    spec = CaseSpec(dtype="float32", batch_size=4, in_channels=8, length=4096,
                    out_channels=8, kernel_size=5, padding="same", compact=2000)  # fmt: skip
    arrays, metadata = build(spec)
    case = Fixture(spec.id, metadata, arrays)
    x, w, b, g = (case.input(k) for k in ("input", "weight", "bias", "grad_output"))
    weight = np.array(uscale_ref.conv1d_backward(g, x, w, b, **case.kwargs).grad_weight)
    weight[..., -1] = 0
    judged = verdict.judge(case, {"grad_weight": weight})
    cause = diagnose(case, {"grad_weight": weight}, ["grad_weight"])
    assert not judged.passed
    assert cause == "the last tap left out of the sums", cause
