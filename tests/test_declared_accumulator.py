"""A declared promoted accumulator is held to what it declares, under bfloat16 results.

FP8 kernels are emulated at a compact fixture's kept positions from the exact products
there (uscale_ref's terms): a register of ``bits`` significant bits, rounded to nearest
after every addition, its sum added into float32 every ``every`` products, the total
scaled and rounded once to bfloat16. A kernel doing what it declares passes; one that
promotes four times less often, or keeps a bit less, fails with that named; one that
does better (float32 sums) passes.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from uscale_ref import golden
from uscale_ref.formats import round_bits, round_to
from uscale_ref.golden import CaseSpec
from uscale_ref.verdict import judge
from uscale_ref.verdict.diagnosis import explain
from uscale_ref.verdict.diagnosis.terms import terms_for

RECIPE = {"input_format": "float8_e4m3fn", "weight_format": "float8_e4m3fn",
          "grad_output_format": "float8_e5m2"}  # fmt: skip
SPEC = CaseSpec("bfloat16", batch_size=2, in_channels=128, out_channels=128, length=1024,
                kernel_size=9, padding="same", compact=6000, **RECIPE)  # fmt: skip
DECLARED = "14 bits every 128"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fp8")
    golden.generate(folder, specs=[SPEC], progress=None)
    return golden.load(SPEC.id, folder)


def _register(bits, every):
    def total(t):
        held, wide = np.zeros(t.shape[0]), np.zeros(t.shape[0], dtype=np.float32)
        for column in range(t.shape[1]):
            held = round_bits(held + t[:, column], bits)
            if every is not None and (column + 1) % every == 0:
                wide += held.astype(np.float32)
                held[:] = 0
        return (wide + held.astype(np.float32)).astype(np.float64)

    return total


def _float32(t):
    return np.sum(t.astype(np.float32), axis=1).astype(np.float64)


def _results(case, total):
    """Every result as a kernel summing with ``total`` gives it (right where kept)."""
    terms = terms_for(case)
    out = {}
    for name in case.expected:
        flat = case.positions(name)
        values = np.empty(flat.size)
        for start in range(0, flat.size, 500):
            products = terms.products(name, flat[start : start + 500])
            t = np.real(products.a * products.b)
            values[start : start + 500] = products.scale * (total(t) + products.bias.real)
        whole = np.zeros(case.result_shape(name), dtype=np.float32).reshape(-1)
        whole[flat] = round_to(values, "bfloat16")
        out[name] = whole.reshape(case.result_shape(name))
    return out


def _verdict(case, total):
    results = _results(case, total)
    verdict = judge(case, results, accumulate=DECLARED, keep=True)
    explain(verdict, case, results, "exact", DECLARED)
    return verdict


def test_a_kernel_doing_what_it_declares_passes(case):
    verdict = _verdict(case, _register(14, 128))
    assert verdict.passed
    figures = [r.accumulator for r in verdict.arrays if r.accumulator is not None]
    assert {f.factor for f in figures} == {1.0}
    assert all(f.seen == f.expected for f in figures)  # the same sums, the same order


def test_a_kernel_doing_better_passes(case):
    verdict = _verdict(case, _float32)
    assert verdict.passed
    assert all(r.accumulator.seen < r.accumulator.expected for r in verdict.arrays
               if r.accumulator is not None)  # fmt: skip


@pytest.mark.parametrize(("bits", "every", "words"), [
    (14, 512, "as if promoted every"), (13, 128, "or kept in 13 bits")])  # fmt: skip
def test_a_kernel_doing_less_fails_with_its_accumulator_named(case, bits, every, words):
    verdict = _verdict(case, _register(bits, every))
    assert not verdict.passed
    assert verdict.cause.startswith("output")
    assert "sums less precise than the declared 14 bits promoted to float32 every 128" in (
        verdict.cause
    )
    assert words in verdict.cause
    factors = [r.accumulator.factor for r in verdict.arrays if r.accumulator is not None]
    assert 1.6 < max(factors) < 3.2  # twice the error, as sqrt(512 / 128) and 2**(14 - 13)
    text = verdict.describe()
    assert "sampled results differ from the exact ones rounded" in text


def test_the_check_runs_only_where_it_applies(case):
    results = _results(case, _float32)
    undeclared = judge(case, results)
    assert all(r.accumulator is None for r in undeclared.arrays)
    plain = judge(case, results, accumulate="float32")
    assert all(r.accumulator is None for r in plain.arrays)


def test_grad_output_in_e4m3_where_e5m2_belongs_is_named(case):
    """grad_output rounded to E4M3 (more bits, less range): its smallest values are lost,
    and the few tiles they spoil are explained by it."""
    terms = terms_for(case)
    results = {}
    for name in case.expected:
        flat = case.positions(name)
        products = terms.products(name, flat)
        a, b = products.a, products.b
        if name == "grad_input":
            b = round_to(b, "float8_e4m3fn")
        elif name in ("grad_weight", "grad_bias"):
            a = round_to(a, "float8_e4m3fn")
        t = np.real(a * b).astype(np.float32)
        values = products.scale * (np.sum(t, axis=1).astype(np.float64) + products.bias.real)
        whole = np.zeros(case.result_shape(name), dtype=np.float32).reshape(-1)
        whole[flat] = round_to(values, "bfloat16")
        results[name] = whole.reshape(case.result_shape(name))
    verdict = judge(case, results, keep=True)
    if verdict.passed:
        pytest.skip("too few small grad_output values in a case this size to show")
    explain(verdict, case, results)
    assert verdict.cause.startswith("grad_output rounded to E4M3 where the case's E5M2 belongs")


@pytest.mark.parametrize("bits", [13, 14])
def test_an_undeclared_register_is_named_with_its_width(case, bits):
    """A register never promoted, undeclared: its errors mostly hide under the bfloat16
    rounding, yet every array it fails is named by the register's width, read from how
    often its results differ from the exact ones rounded (not as a few wrong positions)."""
    results = _results(case, _register(bits, None))
    verdict = judge(case, results, keep=True)
    assert not verdict.passed
    explain(verdict, case, results)
    widths = [int(w) for w in re.findall(r"sums keep about (\d+) significant bits", verdict.cause)]
    assert widths, verdict.cause
    assert all(abs(w - bits) <= 1 for w in widths), verdict.cause
    assert "the rest is right" not in verdict.cause
    named = verdict.cause.split(": sums keep")[0].split(", ")
    assert set(named) == {r.name for r in verdict.failing} - {"grad_bias"}, verdict.cause


def test_a_wrong_tile_under_a_correct_kernel_stays_a_wrong_tile(case):
    """The width is read only where the rest of the array errs too: a tile of noisy results
    in an otherwise correct kernel's is named where it is."""
    results = _results(case, _float32)
    flat = case.positions("output")
    out = results["output"].reshape(-1)
    tile = flat[np.isin(flat % case.result_shape("output")[-1], np.arange(128, 192))]
    noise = np.random.default_rng(0).choice([-0.1, 0.1], tile.size).astype(np.float32)
    out[tile] = round_to(out[tile] * (1 + noise), "bfloat16")
    verdict = judge(case, results, keep=True)
    assert not verdict.passed
    explain(verdict, case, results)
    assert verdict.cause.startswith("output at l in {128, "), verdict.cause
    assert verdict.cause.endswith("the rest is right"), verdict.cause
    assert "significant bits" not in verdict.cause
