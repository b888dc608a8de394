"""The calibration table in small: every correct kernel passes, every planted mistake fails.

benchmarks/verdict_calibration.py runs the same kernels and mistakes at
production sizes (up to (8, 256, 4096, 256, 9)); here each row of its table
is held on a case small enough for the test suite, in every dtype the table
covers. The old rule (format version 1) missed most of these mistakes in
bfloat16 and float16 and the sub-unit ones everywhere.
"""

from __future__ import annotations

import importlib.util

import pytest
from calibration import CORRECT, MUTANTS, taps_summed_in

from uscale_ref import verdict
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build
from uscale_ref.verdict.diagnosis import diagnose
from uscale_ref.verdict.reference import correct_results

DTYPES = ("float32", "bfloat16", "float16", "complex64", "float64")
GEOMETRY = {"batch_size": 2, "in_channels": 64, "length": 256, "out_channels": 64,
            "kernel_size": 5, "padding": 2}  # fmt: skip
_CASES: dict[str, Fixture] = {}
UPSTREAM = "upstream (PyTorch CPU)"
NEEDS = {UPSTREAM: "unit_scaling", "JAX, precision HIGHEST": "jax"}


def case_of(dtype: str) -> Fixture:
    if dtype not in _CASES:
        spec = CaseSpec(dtype=dtype, suite="calibration", **GEOMETRY)
        arrays, metadata = build(spec)
        _CASES[dtype] = Fixture(spec.id, metadata, arrays)
    return _CASES[dtype]


@pytest.mark.parametrize("kernel", list(CORRECT))
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_correct_kernel_passes(dtype, kernel):
    if kernel in NEEDS and importlib.util.find_spec(NEEDS[kernel]) is None:
        pytest.skip(f"{NEEDS[kernel]} is not installed")
    if kernel == UPSTREAM and taps_summed_in(dtype):
        pytest.skip(f"PyTorch sums conv taps in {dtype} on this processor (tested below)")
    case = case_of(dtype)
    judged = verdict.judge(case, CORRECT[kernel](case))
    assert judged.passed, judged.describe()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_pytorch_cpu_summing_taps_in_the_storage_format_fails_and_is_named(dtype):
    # Where PyTorch's CPU backward adds its kernel taps in the storage format (bit for
    # bit, see examples/torch_arithmetic.py), upstream does not accumulate in float32:
    # the default rule fails it, names the cause, and the rule it names passes it.
    pytest.importorskip("unit_scaling")
    narrow = taps_summed_in(dtype)
    if narrow is None:
        pytest.skip(f"PyTorch sums conv taps in float32 on this processor ({dtype})")
    case = case_of(dtype)
    results = CORRECT[UPSTREAM](case)
    judged = verdict.judge(case, results, reference=correct_results(case))
    assert not judged.passed
    failing = [report.name for report in judged.failing]
    assert "grad_input" in failing
    assert set(failing) <= {"grad_input", "grad_weight"}, judged.describe()
    cause = diagnose(case, results, failing, reports=judged.failing)
    assert f"accumulates in {narrow}" in cause
    assert verdict.judge(case, results, accumulate=narrow).passed


@pytest.mark.parametrize(
    ("dtype", "mutant"),
    [(d, m) for d in DTYPES for m in MUTANTS if d in m.dtypes],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_a_planted_mistake_fails_in_the_arrays_it_changes(dtype, mutant):
    case = case_of(dtype)
    results = mutant.make(case, CORRECT["uscale_ref"](case))
    judged = {report.name: report for report in verdict.judge(case, results).arrays}
    for name in mutant.arrays:
        assert not judged[name].passed, judged[name].summary()
