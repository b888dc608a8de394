"""A declared narrow accumulator, held to what it declares: how often its results may
differ from the exact ones rounded once.

A kernel that declares ``accumulate="14 bits every 128"`` sums 128 products at a time in
a register of 14 significant bits, adds each block's sum into float32, and rounds the
total to its output format (bfloat16, say). The element-wise bound allows what such
sums may cost at worst; but with results as narrow as bfloat16 the register's errors
(a quarter of a unit of bfloat16 or less) hide under the output's rounding, and a kernel
that promotes only every 512 products, or keeps 13 bits, passes the bound as easily.

What does show is how often a result lands on another value than the exact sum rounded
once: the register's error moves the sum across a rounding boundary now and then, the
more often the larger it is. The check sums a sample of the results' products as the
declared accumulator does (in the order the definition lists them, rounding to nearest
after every addition, each block's sum added into float32), rounds them to the output
format, and counts the results that differ from the exact ones rounded: ``E`` of the
``n`` sampled. The kernel's count ``O`` over the same elements must stay within

    O <= SLACK * E + Z * sqrt(O + E)

(another order of summation gives another count, as random as the first: room for
both, and a fifth more). The figure named when it does not is the factor ``f`` by which
the simulated accumulator's errors must grow to give the kernel's count: as if its
blocks were ``f**2`` times as long (the errors of a block of ``m`` random terms grow as
``sqrt(m)``), or its register ``log2 f`` bits narrower.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..formats import round_bits, round_to
from ..tolerance.rule import PROMOTED_TO, Rule, accumulator_width, promotion_interval

if TYPE_CHECKING:
    from ..golden.fixture import Fixture

__all__ = ["AccumulatorFigure", "accumulator_figure"]

#: Terms summed for the sample (the products of about this many terms in all).
SAMPLE_TERMS = 2**24
#: Terms held at once (a block of elements' products).
BLOCK_TERMS = 2**23
#: Sampled elements, at most and at least.
MOST, LEAST = 20_000, 256
#: Room for another order of summation: a fifth more, and the standard errors beyond it.
SLACK = 1.2
Z = 4.0
#: Narrow output formats, where the register's errors hide under the output's rounding.
NARROW = ("bfloat16", "float16")


@dataclass(frozen=True)
class AccumulatorFigure:
    """How often a kernel's results differ from the exact ones rounded, against what the
    declared accumulator gives: ``seen`` of ``judged`` sampled elements, ``expected`` by
    the accumulator simulated on them; ``factor`` the growth of the simulated
    accumulator's errors that gives the count seen (1 when the kernel does as well)."""

    accumulate: str
    judged: int
    seen: int
    expected: int
    factor: float

    @property
    def spread(self) -> float:
        """The standard error of the difference of two such counts."""
        return math.sqrt(self.seen + self.expected)

    @property
    def limit(self) -> float:
        return SLACK * self.expected + Z * self.spread

    @property
    def passed(self) -> bool:
        return self.seen <= self.limit

    def _percent(self, count: float) -> float:
        return 100 * count / max(1, self.judged)

    def _growth(self) -> str:
        """How much larger the kernel's errors are than the declared accumulator's, read as
        a longer block or a narrower register."""
        bits, every = _declared(self.accumulate)
        f = self.factor
        return (
            f"their errors about {f:.1f} times as large, as if promoted every "
            f"{every * f * f:.0f} products or kept in {bits - math.log2(f):.0f} bits"
        )

    def describe(self) -> str:
        """The finding in words."""
        bits, every = _declared(self.accumulate)
        text = (
            f"{self._percent(self.seen):.1f}% of {self.judged} sampled results differ from the "
            f"exact ones rounded, where sums in {bits} bits promoted to {PROMOTED_TO} every "
            f"{every} products would at {self._percent(self.expected):.1f}% "
            f"(± {self._percent(self.spread):.1f}%)"
        )
        if self.factor > 1:
            text += f": sums less precise than declared, {self._growth()}"
        return text

    def cause(self) -> str:
        """The likely cause, for a kernel that fails by this figure alone."""
        bits, every = _declared(self.accumulate)
        return (
            f"sums less precise than the declared {bits} bits promoted to {PROMOTED_TO} "
            f"every {every} products: {self._growth()} ({self._percent(self.seen):.1f}% of "
            f"results off the exact ones rounded, where the declared accumulator gives "
            f"{self._percent(self.expected):.1f}%)"
        )


def _declared(accumulate: str) -> tuple[int, int]:
    width = accumulator_width(accumulate)
    assert width is not None and width[1] is not None
    return width[0], width[1]


def applies(rule: Rule, complex_: bool) -> bool:
    """Whether the check runs: a promoted accumulator declared, results narrow and rounded
    to nearest, real values."""
    return (
        promotion_interval(rule.accumulate) is not None
        and rule.output_format in NARROW
        and rule.rounding == "nearest"
        and not complex_
    )


def accumulator_figure(
    fixture: Fixture,
    name: str,
    judged: npt.NDArray[np.generic],
    expected: npt.NDArray[np.generic],
    rule: Rule,
) -> AccumulatorFigure | None:
    """The check on result ``name``: ``judged`` and ``expected`` over the judged elements
    (flat; a compact fixture's at its positions); None where it does not apply."""
    from .diagnosis.terms import terms_for

    if not applies(rule, np.iscomplexobj(expected)) or name == "grad_bias":
        return None
    bits, every = _declared(rule.accumulate)
    terms = terms_for(fixture)
    length = terms.term_count(name)
    size = int(expected.size)
    chosen = min(size, MOST, max(LEAST, SAMPLE_TERMS // max(1, length)))
    index = np.sort(np.random.default_rng(0).choice(size, chosen, replace=False))
    positions = fixture.positions(name)
    flat = index if positions is None else positions[index]
    exact, simulated = register_sums(terms, name, flat, bits, every)
    target = np.asarray(expected[index], dtype=np.float64)
    seen = int(np.count_nonzero(np.asarray(judged[index], dtype=np.float64) != target))
    fmt = rule.output_format
    error = simulated - exact

    def off(factor: float) -> int:
        """Results off the exact ones rounded, the simulated errors grown by ``factor``."""
        return int(np.count_nonzero(round_to(exact + factor * error, fmt) != target))

    expected_count = off(1.0)
    factor = 1.0
    if seen > expected_count:
        factor = solve_factor(lambda f: off(f) - seen)
    return AccumulatorFigure(rule.accumulate, chosen, seen, expected_count, factor)


def register_sums(
    terms: Any, name: str, flat: npt.NDArray[np.int64], bits: int, every: int | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The exact values at ``flat``, and the values a ``bits``-bit register promoted to
    float32 every ``every`` products (never, for None) gives there (scaled, before the
    output rounding)."""
    count = terms.term_count(name)
    per = max(1, BLOCK_TERMS // max(1, count))
    exact, simulated = [], []
    for start in range(0, flat.size, per):
        products = terms.products(name, flat[start : start + per])
        t = np.real(products.a * products.b)
        held = np.zeros(t.shape[0])
        wide = np.zeros(t.shape[0], dtype=np.float32)
        for column in range(t.shape[1]):
            held = round_bits(held + t[:, column], bits)
            if every is not None and (column + 1) % every == 0:
                wide += held.astype(np.float32)
                held[:] = 0
        total = (wide + held.astype(np.float32)).astype(np.float64)
        exact.append(products.value().real)
        simulated.append(products.scale * (total + products.bias.real))
    return np.concatenate(exact), np.concatenate(simulated)


def solve_factor(gap: Callable[[float], int]) -> float:
    """The factor at least 1 where ``gap(factor)`` (rising, in steps) crosses zero, by
    bisection on a log scale (at most 1024), to about 1 %."""
    low, high = 1.0, 2.0
    while gap(high) < 0 and high < 1024:
        low, high = high, high * 2
    for _ in range(12):
        middle = math.sqrt(low * high)
        if gap(middle) < 0:
            low = middle
        else:
            high = middle
    return math.sqrt(low * high)
