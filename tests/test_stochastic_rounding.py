"""Stochastic rounding of results, declared with ``rounding="stochastic"``: an unbiased
kernel passes over many seeds; one whose rounding leans one way fails, the bias named."""

from __future__ import annotations

import numpy as np
import pytest
from catalogue import exact

from uscale_ref import verdict
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build
from uscale_ref.tolerance.rule import rule_for
from uscale_ref.verdict.diagnosis import diagnose

SPEC = CaseSpec("bfloat16", kernel_size=5, batch_size=4, in_channels=32, out_channels=32,
                length=256, padding=2, suite="stochastic")  # fmt: skip
BITS = 8  # bfloat16's significant bits


@pytest.fixture(scope="module")
def case() -> Fixture:
    arrays, metadata = build(SPEC)
    return Fixture(SPEC.id, metadata, arrays)


def spacing(values: np.ndarray) -> np.ndarray:
    """The spacing of bfloat16 numbers at each (normal) value; 0 at zero."""
    magnitude = np.where(values == 0, 1.0, np.abs(values))
    exponent = np.floor(np.log2(magnitude)).astype(int)
    return np.where(values == 0, 0.0, np.ldexp(1.0, exponent - (BITS - 1)))


def rounded(values: np.ndarray, noise: np.ndarray, width: float = 1.0) -> np.ndarray:
    """``values`` rounded on bfloat16's grid by adding ``width`` spacings of ``noise`` (in
    [0, 1)) to their magnitudes and cutting toward zero: unbiased for ``width = 1``."""
    step = spacing(values)
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        cut = np.where(step > 0, np.floor((magnitude + width * noise * step) / step) * step, 0.0)
    return (np.sign(values) * cut).astype(np.float32)


def kernel(case: Fixture, seed: int, width: float = 1.0, reuse: bool = False):
    rng = np.random.default_rng(seed)
    results = {}
    for name, value in exact(case).items():
        noise = rng.random() * np.ones(value.shape) if reuse else rng.random(value.shape)
        results[name] = rounded(np.asarray(value, dtype=np.float64), noise, width)
    return results


def test_the_rule_allows_a_unit_and_no_bias():
    nearest, stochastic = rule_for("bfloat16"), rule_for("bfloat16", rounding="stochastic")
    assert stochastic.output_units > nearest.output_units
    (interval,) = stochastic.allowed_scale_errors(1.0, [0.001, -0.001])
    assert interval[0] < 0 < interval[1] and interval[1] < 2.0**-20
    assert "stochastic rounding" in stochastic.describe()
    with pytest.raises(ValueError, match="rounding must be one of"):
        rule_for("bfloat16", rounding="up")


@pytest.mark.parametrize("seed", range(6))
def test_unbiased_stochastic_rounding_passes(case, seed):
    judged = verdict.judge(case, kernel(case, seed), rounding="stochastic")
    assert judged.passed, judged.describe()


@pytest.mark.parametrize(
    "mistake, changes",
    [("noise of half the width", {"width": 0.5}), ("truncation", {"width": 0.0}),
     ("random bits reused", {"reuse": True})],
)  # fmt: skip
def test_biased_stochastic_rounding_fails_with_the_bias_named(case, mistake, changes):
    seed = 7 if mistake != "random bits reused" else 3  # a draw far from 1/2
    results = kernel(case, seed, **changes)
    judged = verdict.judge(case, results, rounding="stochastic")
    assert not judged.passed, mistake
    assert "bias" in judged.failing[0].failed_checks
    cause = diagnose(case, results, [r.name for r in judged.failing], rounding="stochastic")
    assert "stochastic rounding with a bias" in cause, cause


def test_golden_check_takes_the_rounding(tmp_path, capsys):
    from uscale_ref import golden
    from uscale_ref.cli import main

    folder, results = tmp_path / "golden", tmp_path / "results"
    golden.generate(folder, specs=[SPEC], progress=None)
    case = golden.load(SPEC.id, folder)
    results.mkdir()
    np.savez(results / f"{SPEC.id}.npz", **kernel(case, 11, width=0.0))  # truncated
    assert main(["golden", "check", str(results), "--golden", str(folder),
                 "--rounding", "stochastic"]) == 1  # fmt: skip
    out = capsys.readouterr().out
    assert "stochastic rounding with a bias" in out and "truncation" in out
    np.savez(results / f"{SPEC.id}.npz", **kernel(case, 11))
    assert main(["golden", "check", str(results), "--golden", str(folder),
                 "--rounding", "stochastic"]) == 0  # fmt: skip


def test_a_compact_fp8_case_with_leaning_rounding_names_it_for_every_array():
    import uscale_ref

    spec = CaseSpec("bfloat16", kernel_size=9, batch_size=4, in_channels=64, out_channels=64,
                    length=1024, padding="same", compact=4000, input_format="float8_e4m3fn",
                    weight_format="float8_e4m3fn", grad_output_format="float8_e5m2")  # fmt: skip
    arrays, metadata = build(spec)
    case = Fixture(spec.id, metadata, arrays)
    x, w, b, g = (case.input(k).astype(np.float64)
                  for k in ("input", "weight", "bias", "grad_output"))  # fmt: skip
    exact_results = {"output": np.asarray(uscale_ref.conv1d(x, w, b, **case.kwargs)),
                     **uscale_ref.conv1d_backward(g, x, w, b, **case.kwargs)._asdict()}  # fmt: skip
    rng = np.random.default_rng(5)
    fair = {k: rounded(np.asarray(v), rng.random(np.shape(v))) for k, v in exact_results.items()}
    assert verdict.judge(case, fair, rounding="stochastic").passed
    leaning = {k: rounded(np.asarray(v), rng.random(np.shape(v)), 0.5)
               for k, v in exact_results.items()}  # fmt: skip
    judged = verdict.judge(case, leaning, rounding="stochastic")
    failing = [r.name for r in judged.failing]
    assert {"output", "grad_input", "grad_weight"} <= set(failing)
    cause = diagnose(case, leaning, failing, rounding="stochastic")
    assert "stochastic rounding with a bias" in cause, cause
    assert "no single known mistake" not in cause, cause


def test_truncated_results_are_named_under_rounding_to_nearest(case):
    results = kernel(case, 2, width=0.0)
    judged = verdict.judge(case, results)
    assert not judged.passed
    cause = diagnose(case, results, [r.name for r in judged.failing])
    assert cause == "results truncated (rounded toward zero) where rounding to nearest belongs"
