"""The likely cause of the mistakes the verdict now sees, named only when it explains the result."""

from __future__ import annotations

import numpy as np
import pytest
from calibration import CORRECT, MUTANTS, stored, to_format

import uscale_ref
from uscale_ref import verdict
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build
from uscale_ref.testing import assert_conv1d
from uscale_ref.verdict.diagnosis import NO_CAUSE, diagnose


def fixture(dtype, **sizes):
    shape = {"batch_size": 2, "in_channels": 32, "length": 128, "out_channels": 32,
             "kernel_size": 3, "padding": 1, **sizes}  # fmt: skip
    spec = CaseSpec(dtype=dtype, suite="tests", **shape)
    arrays, metadata = build(spec)
    return Fixture(spec.id, metadata, arrays)


def cause(case, results, **options):
    judged = verdict.judge(case, results, **options)
    assert not judged.passed
    return diagnose(case, results, [r.name for r in judged.failing], reports=judged.failing,
                    **options)  # fmt: skip


def mutant(name):
    return next(m for m in MUTANTS if m.name == name)


def test_zeros_are_named_as_zeros_not_as_a_scale_applied_twice():
    case = fixture("bfloat16", in_channels=8, length=32, out_channels=8)
    zeros = {k: np.zeros_like(v) for k, v in case.expected.items()}
    assert cause(case, zeros).startswith("nothing computed")


@pytest.mark.parametrize(
    ("rounding", "named"), [("nearest", "(to nearest)"), ("toward_zero", "truncated")]
)
def test_tf32_multiplicands_are_named(rounding, named):
    case = fixture("float32")
    x, w, g = (case.inputs[k] for k in ("input", "weight", "grad_output"))
    from uscale_ref.formats import round_to

    results = CORRECT["uscale_ref"](case, *(round_to(a, "tf32", rounding) for a in (x, w, g)))
    text = cause(case, results)
    assert text.startswith("computes in TF32") and named in text
    assert verdict.judge(case, results, "tf32").passed


@pytest.mark.parametrize(
    ("dtype", "name", "named"),
    [("float32", "inputs rounded to bfloat16", "inputs rounded to bfloat16"),
     ("float64", "computes in float32", "computes in float32"),
     ("float16", "running sums in the storage format", "accumulates in float16")],
)  # fmt: skip
def test_precision_mistakes_are_named(dtype, name, named):
    case = fixture(dtype, in_channels=128)
    results = mutant(name).make(case, CORRECT["uscale_ref"](case))
    assert named in cause(case, results)


def test_a_small_scale_error_is_named_with_its_factor():
    case = fixture("float32")
    results = mutant("output scale x (1 + 0.0001)").make(case, CORRECT["uscale_ref"](case))
    text = cause(case, results)
    assert text.startswith("output: a scale off by a factor 1 + 1.0e-04 ± ")
    assert text.endswith(" (the rest of the result is right)")


def test_half_the_answer_is_a_factor_of_a_half():
    case = fixture("float64")
    results = mutant("returns half the answer").make(case, CORRECT["uscale_ref"](case))
    text = cause(case, results)
    assert "output, grad_input, grad_weight: off by a factor 0.5 ± " in text
    assert "(a wrong scale)" in text


def test_a_wrong_tile_of_channels_is_named_by_its_channels():
    case = fixture("float32", batch_size=1, length=64, out_channels=192)
    results = CORRECT["uscale_ref"](case)
    results["output"] = stored(case, results["output"].astype(np.float64))
    results["output"][:, 64:128] *= np.float32(1 + 3e-4)
    text = cause(case, results)
    assert text.startswith("output at o in 64..127: a scale off by a factor 1 + 3.0e-04 ± ")
    assert text.endswith("; the rest is right")


def test_an_unexplained_precision_loss_says_so():
    case = fixture("float32")
    results = CORRECT["uscale_ref"](case)
    rng = np.random.default_rng(0)
    noisy = results["output"].astype(np.float64)
    noisy *= 1 + 1e-4 * rng.standard_normal(noisy.shape)
    results["output"] = noisy.astype(np.float32)
    assert cause(case, results).startswith(NO_CAUSE)


def test_the_runner_names_tf32_end_to_end_and_tf32_precision_passes_it():
    spec = CaseSpec(dtype="float32", batch_size=2, in_channels=64, length=256, out_channels=64,
                    kernel_size=5, padding="same")  # fmt: skip

    def forward(x, w, b, **kwargs):
        return uscale_ref.conv1d(to_format(x, "tf32"), to_format(w, "tf32"), b, **kwargs)

    def backward(g, x, w, b, **kwargs):
        return uscale_ref.conv1d_backward(*(to_format(a, "tf32") for a in (g, x, w)), b, **kwargs)

    with pytest.raises(AssertionError) as failure:
        assert_conv1d(forward, backward, cases=[spec], drawn=0)
    text = str(failure.value)
    assert "every failure is explained by one mistake: computes in TF32" in text
    assert "precision" in text and "a correct evaluation reaches" in text
    report = assert_conv1d(forward, backward, cases=[spec], drawn=0, precision="tf32")
    assert report.cases == 1


def test_own_cases_run_in_their_own_dtype_and_a_conflict_is_named():
    pytest.importorskip("ml_dtypes")
    spec = CaseSpec(dtype="bfloat16", batch_size=1, in_channels=8, length=32, out_channels=8,
                    kernel_size=3)  # fmt: skip
    report = assert_conv1d(uscale_ref.conv1d, uscale_ref.conv1d_backward, cases=[spec], drawn=0)
    assert report.cases == 1 and ("bfloat16", "output") in report.units
    with pytest.raises(ValueError, match="bf16_n1c8o8l32_k3 is bfloat16, which dtypes="):
        assert_conv1d(uscale_ref.conv1d, cases=[spec], dtypes=["float32"], drawn=0)
