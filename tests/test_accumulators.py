"""Accumulators as kernels have them: a register of p significant bits, perhaps promoted to
float32 every m products (FP8 tensor cores keep about 13-14 bits unless the kernel promotes).

A kernel that declares what it does passes; one that does less, or declares nothing, fails
and the diagnosis states the width its sums keep.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from calibration import pairwise_kernel, summed_kernel

from uscale_ref import verdict
from uscale_ref.cli import main
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build
from uscale_ref.tolerance.rule import check_accumulate, promotion_interval, rule_for
from uscale_ref.verdict.diagnosis import NO_CAUSE, diagnose
from uscale_ref.verdict.diagnosis.arithmetic import round_bits

# 576 products per output element, 72 per grad_input element, 512 per grad_weight element.
SPEC = CaseSpec("float32", kernel_size=9, batch_size=2, in_channels=64, out_channels=8,
                length=256, padding="same", suite="accumulators")  # fmt: skip


@pytest.fixture(scope="module")
def case() -> Fixture:
    arrays, metadata = build(SPEC)
    return Fixture(SPEC.id, metadata, arrays)


def promoted(bits: int, every: int | None):
    """A sum of terms in a register of ``bits`` significant bits; with ``every``, its partial
    sum added into a float32 total (and the register cleared) every ``every`` terms."""

    def combine(terms):
        total, register, count = None, None, 0
        for term in terms:
            register = term.copy() if register is None else round_bits(register + term, bits)
            count += 1
            if every is not None and count == every:
                total = register if total is None else total + register
                total = np.float32(total) if np.ndim(total) == 0 else total.astype(np.float32)
                register, count = None, 0
        if register is not None:
            total = register if total is None else (total + register).astype(np.float32)
        return np.asarray(total, dtype=np.float64)

    return combine


def kernel(case: Fixture, bits: int, every: int | None):
    return summed_kernel(case, promoted(bits, every), np.float64)


@pytest.mark.parametrize(
    "text, bits, every",
    [("14 bits", 14, None), ("14 bits every 128", 14, 128), ("8 bits every 1", 8, 1),
     ("float32", 24, None)],
)  # fmt: skip
def test_the_forms_of_accumulate(text, bits, every):
    assert check_accumulate(text) == text
    rule = rule_for("float32", accumulate=text)
    assert rule.u_acc == 2.0**-bits and promotion_interval(text) == every


@pytest.mark.parametrize(
    "text", ["14bits", "14 bits every 0", "1 bits", "60 bits", " 14 bits", "14 bits every",
             "tf32", "14 bits every 12.5"],
)  # fmt: skip
def test_other_forms_are_refused_by_name(text, capsys):
    with pytest.raises(ValueError, match=r"accumulate must be .*'p bits every m'"):
        check_accumulate(text)
    with pytest.raises(SystemExit) as exit:
        main(["golden", "check", ".", "--accumulate", text])
    assert exit.value.code == 2 and "--accumulate" in capsys.readouterr().err


def test_promotion_bounds_a_long_sum_by_its_interval():
    # Without promotion, a 14-bit sum of 2**13 products may lose every bit; with promotion
    # every 128 it errs by about 128 units of 2**-14, plus float32's share of the rest.
    unpromoted = rule_for("float32", accumulate="14 bits")
    every = rule_for("float32", accumulate="14 bits every 128")
    assert unpromoted.accumulation_units(2**14) == float("inf")
    units = every.accumulation_units(2**14)
    assert 128 < units < 128 * 1.01 + 2**-10 * (2**14 / 128 + 1) * 1.01 + 2 + 1e-9
    # A sum no longer than the interval is never promoted: the same bound as without.
    assert every.accumulation_units(100) == unpromoted.accumulation_units(100)
    assert "promoted to float32 every 128 products" in every.describe()


def test_a_kernel_that_declares_its_accumulator_passes(case):
    results = kernel(case, 14, 32)
    assert verdict.judge(case, results, accumulate="14 bits every 32").passed
    assert verdict.judge(case, pairwise_kernel(case), accumulate="14 bits every 32").passed


def test_an_undeclared_narrow_accumulator_fails_with_its_width_named(case):
    results = kernel(case, 14, None)
    judged = verdict.judge(case, results)
    assert not judged.passed
    cause = diagnose(case, results, [r.name for r in judged.failing])
    assert NO_CAUSE not in cause, cause
    widths = [int(m) for m in re.findall(r"keep (?:about )?(\d+) significant bits", cause)]
    assert widths and all(abs(w - 14) <= 1 for w in widths), cause
    assert "accumulate='14 bits every m'" in cause, cause


def test_an_undeclared_promoted_accumulator_fails(case):
    # Promotion makes the errors smaller than a running sum's in the same register: the
    # widths read from them are the sums' effective ones (here 14 to 17 bits), not the
    # register's; declaring the accumulator is what tells the verdict.
    results = kernel(case, 14, 32)
    judged = verdict.judge(case, results)
    assert not judged.passed
    cause = diagnose(case, results, [r.name for r in judged.failing])
    widths = [int(m) for m in re.findall(r"keep (?:about )?(\d+) significant bits", cause)]
    assert widths and all(14 <= w <= 17 for w in widths), cause


def test_a_narrower_accumulator_than_declared_fails(case):
    results = kernel(case, 9, 32)
    assert not verdict.judge(case, results, accumulate="14 bits every 32").passed
