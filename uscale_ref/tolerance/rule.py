"""The rule a result is judged by: how a kernel accumulates, what it may round, and how much.

A kernel that computes one element of a result ``y = s (sum_k t_k + b)``

1. forms the products ``t_k`` and adds them (and perhaps the bias) in its
   *accumulation* format, unit roundoff ``u_acc``;
2. rounds to the *output* format (unit roundoff ``u_out``) what it holds:
   the sum, the sum plus the bias, the product with the scale (which it may
   itself have rounded to the output format first, as upstream does for the
   gradients).

Step 1 costs at most ``(terms + 2) u_acc`` times the error scale
``E = |s| (sum_k |t_k| + |b|)`` (Higham's bound for a sum in any order, two
roundings to spare for the scale and the second-order terms); step 2 at most
:data:`OUTPUT_ROUNDINGS` roundings of ``u_out``, each relative to what is
rounded, which is at most ``M = |y| + |s b|`` (the bias term counts because a
kernel may round the sum before adding the bias, and cancellation can make
that sum larger than the result). docs/golden-format.md derives it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ACCUMULATIONS",
    "BLOCK",
    "CHECKS",
    "MARGIN_BITS",
    "OUTPUT_ROUNDINGS",
    "PRECISIONS",
    "ROUNDINGS",
    "Z_LIMIT",
    "Rule",
    "accumulator_width",
    "rule_for",
]

#: The unit roundoff (half the spacing of the numbers in [1, 2)) of each format by name.
UNIT_ROUNDOFF = {
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
    "tf32": 2.0**-11,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
}
#: The smallest positive (subnormal) number of each format: below the smallest normal,
#: rounding errs by up to half of it, whatever the value's size.
SMALLEST_SUBNORMAL = {
    "float16": 2.0**-24,
    "bfloat16": 2.0**-133,
    "tf32": 2.0**-136,
    "float32": 2.0**-149,
    "float64": 2.0**-1074,
}
#: Significant bits of each format (the unit roundoff is ``2 ** -bits``).
SIGNIFICANT_BITS = {name: -int(math.log2(u)) for name, u in UNIT_ROUNDOFF.items()}
#: The format each case dtype's values (and each part of a complex value) are rounded to.
OUTPUT_FORMAT = {
    "float16": "float16",
    "bfloat16": "bfloat16",
    "float32": "float32",
    "float64": "float64",
    "complex32": "float16",
    "complex64": "float32",
    "complex128": "float64",
}
#: What a kernel accumulates in unless it says otherwise: float32 for the narrow
#: formats (as tensor cores, oneDNN and XNNPACK do), else the dtype itself.
DEFAULT_ACCUMULATION = {
    "float16": "float32",
    "bfloat16": "float32",
    "complex32": "float32",
    "float32": "float32",
    "complex64": "float32",
    "float64": "float64",
    "complex128": "float64",
}
ACCUMULATIONS = ("float16", "bfloat16", "float32", "float64")
PRECISIONS = ("exact", "tf32")
#: The algorithms a kernel may declare: ``direct`` (forms every product), ``fft``
#: (convolves by transforms of whole rows), ``winograd`` (minimal filtering on short
#: tiles); :mod:`uscale_ref.verdict.algorithm`.
ALGORITHMS = ("direct", "fft", "winograd")
#: The FFT's normwise bound's constant: three transforms (two forward, one back), the
#: products, and the sum over channels, each a few roundings per level of the transform.
FFT_UNITS = 8.0
#: The Winograd bound's constant: a tile's transforms (with points 0, +-1, +-2, +-1/2, up
#: to eight of them: F(6, 3), F(4, 5), F(2, 7)) measured at most 4.3 in float32.
WINOGRAD_UNITS = 16.0
#: The longest tile (outputs) the Winograd bound's windows reach over, either side.
WINOGRAD_TILE = 8
#: How a kernel rounds its results: to nearest (a convention of its own for ties and the
#: order of its roundings), or stochastically (up or down at random, with the probability
#: that makes the expected result exact: no bias at all).
ROUNDINGS = ("nearest", "stochastic")
#: The three tests of an array, each of which can be switched off by name.
CHECKS = ("bound", "precision", "bias")

#: Roundings of the output format between a correct kernel's result and the
#: fixture's on one element: the kernel's sum, bias add, scale (rounded to the
#: format) and product, and the fixture's own rounding of the exact value.
OUTPUT_ROUNDINGS = 5
#: An array, row or tile fails when its precision falls this many bits short.
MARGIN_BITS = 3.0
#: The errors' bias fails when it is this many standard errors from every allowed value.
Z_LIMIT = 8.0
#: Positions per tile of the precision map (and of its picture).
BLOCK = 64
#: A kernel may evaluate the scale formula in its accumulation format: a few roundings.
SCALE_ROUNDINGS = 8
#: How far (in output units) a narrow kernel's bias may sit from a convention's exact one.
CONVENTION_SLACK = 1 / 64
#: How far (in output units) a row's bias may sit beyond the conventions' in a narrow format.
ROW_SLACK = 0.5
# A TF32 kernel rounds each multiplicand to 11 significant bits: faithfully (to
# nearest, or toward zero) within 2**-10 of it, relatively, so a product of
# two is within 2 * 2**-10 + 2**-20 of the exact one.
TF32_PRODUCT_ERROR = 2 * 2.0**-10 + 2.0**-20


@dataclass(frozen=True)
class Rule:
    """How one case's results are judged.

    Attributes
    ----------
    dtype : str
        The case dtype (``"bfloat16"``, ``"complex64"``, ...).
    accumulate : str
        The format the kernel accumulates in (:data:`ACCUMULATIONS`).
    precision : str
        ``"exact"``, or ``"tf32"``: every multiplicand may have been rounded to TF32.
    checks : frozenset of str
        Which of :data:`CHECKS` decide the verdict.
    algorithm : str
        ``"direct"``; ``"fft"``: the kernel convolves by transforms, and its errors
        are bounded by the rows' norms too; ``"winograd"``: by minimal filtering on
        tiles, its errors bounded by the norms of each tile's inputs
        (:mod:`uscale_ref.verdict.algorithm`).
    rounding : str
        ``"nearest"``, or ``"stochastic"``: the kernel rounds its results up or down
        at random; each may then err by a whole unit in the last place, and their
        errors' mean must be zero.
    """

    dtype: str
    accumulate: str
    precision: str = "exact"
    checks: frozenset[str] = frozenset(CHECKS)
    algorithm: str = "direct"
    rounding: str = "nearest"

    @property
    def output_format(self) -> str:
        """The format results are rounded to (the real format of a complex dtype)."""
        return OUTPUT_FORMAT[self.dtype]

    @property
    def u_out(self) -> float:
        """The output format's unit roundoff."""
        return UNIT_ROUNDOFF[self.output_format]

    @property
    def u_acc(self) -> float:
        """The accumulation format's unit roundoff (``2 ** -p`` for an accumulator named
        ``"p bits"``)."""
        return accumulation_roundoff(self.accumulate)

    @property
    def bits(self) -> int:
        """The output format's significant bits: a correct kernel's precision."""
        return SIGNIFICANT_BITS[self.output_format]

    @property
    def complex_factor(self) -> float:
        """2 for complex dtypes: a complex product and sum round a real and an imaginary part."""
        return 2.0 if self.dtype.startswith("complex") else 1.0

    def accumulation_units(self, terms: int) -> float:
        """The accumulation's bound in units of ``u_acc * error_scale``.

        ``gamma_n / u + 2`` with ``n = c * terms`` (``c`` = 2 for complex: a
        complex sum is a real one of twice the length per part) and Higham's
        ``gamma_n = n u / (1 - n u)``, two more for the scale multiplication
        and second-order terms, times ``c``; plus what TF32 multiplicands cost
        under ``precision="tf32"``. Infinite when ``n u >= 1``: such a sum
        can lose every bit.
        """
        n = self.complex_factor * terms
        every = promotion_interval(self.accumulate)
        if every is not None and n > every:
            # Blocks of `every` products summed in the narrow register, each block's sum then
            # added into float32: gamma_every of the narrow format over all the terms, and
            # gamma_k of float32 (k block sums) in units of the narrow one.
            blocks = math.ceil(n / every) + 1
            wide = UNIT_ROUNDOFF[PROMOTED_TO]
            if every * self.u_acc >= 1 or blocks * wide >= 1:
                return math.inf
            sums = every / (1 - every * self.u_acc) + wide / self.u_acc * blocks / (
                1 - blocks * wide
            )
        elif n * self.u_acc >= 1:
            return math.inf
        else:
            sums = n / (1 - n * self.u_acc)
        units = sums + 2 * self.complex_factor
        if self.precision == "tf32":
            units += self.complex_factor * TF32_PRODUCT_ERROR / self.u_acc
        return units

    @property
    def output_units(self) -> float:
        """The output roundings' bound in units of ``u_out * rounded``:
        ``c * OUTPUT_ROUNDINGS * (1 + OUTPUT_ROUNDINGS * u_out)``, ``c`` = 2 for complex (the
        last factor covers the second-order terms of the roundings, and ``|expected|``
        standing for the exact value); one rounding more under ``rounding="stochastic"``,
        whose last rounding may miss by a whole unit in the last place (two of ``u_out``)."""
        roundings = OUTPUT_ROUNDINGS + (1 if self.rounding == "stochastic" else 0)
        return self.complex_factor * roundings * (1 + roundings * self.u_out)

    @property
    def eta_out(self) -> float:
        """The output format's smallest subnormal."""
        return SMALLEST_SUBNORMAL[self.output_format]

    @property
    def eta_acc(self) -> float:
        """The accumulation format's smallest subnormal (a ``"p bits"`` accumulator has
        float32's range)."""
        if self.accumulate in SMALLEST_SUBNORMAL:
            return SMALLEST_SUBNORMAL[self.accumulate]
        return 2.0**-126 * 2 * self.u_acc

    def absolute(self, terms: int, scale: float) -> float:
        """What roundings below the smallest normal may cost, whatever the values' size:
        ``c (eta_out (|s| + 1) + (terms + 2) eta_acc |s| / 2)``. A kernel may round the sum
        and the sum plus bias to the output format before the scale ``s`` multiplies them
        (half a subnormal spacing each, times ``|s|``), then the product, and the fixture
        rounds once (half a spacing each); each of its sum's roundings costs half the
        accumulation format's spacing."""
        s = abs(scale) if math.isfinite(scale) else 0.0
        stochastic = self.eta_out if self.rounding == "stochastic" else 0.0  # a whole spacing
        return self.complex_factor * (
            self.eta_out * (s + 1) + stochastic
            + (self.complex_factor * terms + 2) * self.eta_acc * s / 2
        )  # fmt: skip

    def bound(
        self,
        terms: int,
        error_scale: npt.NDArray[np.float64],
        rounded: npt.NDArray[np.float64],
        scale: float = 1.0,
        normwise: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """The element-wise bound on ``|actual - expected|``:
        ``accumulation_units(terms) * u_acc * error_scale + output_units * u_out * rounded
        + absolute(terms, scale)`` (``scale``: the result's scale factor); under
        ``algorithm="fft"``, plus ``FFT_UNITS * u_acc * normwise``, under
        ``algorithm="winograd"``, plus ``WINOGRAD_UNITS * u_acc * normwise``
        (:func:`uscale_ref.verdict.algorithm.normwise`).
        """
        bound: npt.NDArray[np.float64] = (
            self.accumulation_units(terms) * self.u_acc * error_scale
            + self.output_units * self.u_out * rounded
            + self.absolute(terms, scale)
        )
        if self.algorithm != "direct" and normwise is not None:
            units = FFT_UNITS if self.algorithm == "fft" else WINOGRAD_UNITS
            bound = bound + self.complex_factor * units * self.u_acc * normwise
        return bound

    def yardstick(
        self,
        terms: int,
        error_scale: npt.NDArray[np.float64],
        rounded: npt.NDArray[np.float64],
        scale: float = 1.0,
        normwise: npt.NDArray[np.float64] | None = None,
    ) -> npt.NDArray[np.float64]:
        """The size of a correct kernel's error on each element (its root mean square, about).

        ``sqrt((u_acc * error_scale)**2 + (u_out * rounded)**2 + (eta_out (|s| + 1) / 2)**2)``:
        a sum in any order of terms with random signs errs by about ``u_acc``
        times their 1-norm (0.64 of it for a plain running sum, less for
        blocked or pairwise sums), one rounding to the output format by up to
        ``u_out`` relative, or, below the smallest normal, by half its
        smallest subnormal ``eta_out`` (before and after the scale ``s``).
        Under ``precision="tf32"``, add ``2 * 2**-11 * error_scale /
        sqrt(terms)``: independent relative errors of the products grow with
        the terms' 2-norm, about ``error_scale / sqrt(terms)`` for random terms.
        Under ``algorithm="fft"`` or ``"winograd"``, add ``u_acc * normwise``: the
        norms the algorithm's error is bounded by, times a unit roundoff.
        """
        accumulation = self.u_acc * error_scale
        rounding = self.u_out * rounded
        subnormal = self.eta_out * (abs(scale) + 1) / 2 if math.isfinite(scale) else 0.0
        squares = accumulation * accumulation + rounding * rounding + subnormal * subnormal
        if self.precision == "tf32":
            products = 2 * UNIT_ROUNDOFF["tf32"] * error_scale / math.sqrt(max(terms, 1))
            squares = squares + products * products
        if self.algorithm != "direct" and normwise is not None:
            transform = self.u_acc * normwise
            squares = squares + transform * transform
        yardstick: npt.NDArray[np.float64] = np.sqrt(squares)
        return yardstick

    def allowed_scale_errors(
        self, scale: float, centres: Sequence[float] | None = None
    ) -> list[tuple[float, float]]:
        """The relative scale errors a correct kernel's whole array may show (intervals).

        Around each of ``centres``, the biases of the rounding conventions
        correct kernels use (:mod:`uscale_ref.tolerance.conventions`; a
        fixture stores them), a kernel may differ by
        :data:`SCALE_ROUNDINGS` roundings of its accumulation format (it
        evaluates the scale formula in it) and, in a narrow output format,
        by :data:`CONVENTION_SLACK` of its unit roundoff. Without
        ``centres``: 0 and the scale rounded to the output format, each
        :data:`ROW_SLACK` units of the output format wide in a narrow
        format. Under ``precision="tf32"``: anything within ``2**-9`` too,
        since multiplicands truncated toward zero shrink every product a
        little.
        """
        if self.rounding == "stochastic":  # unbiased by design: no convention's bias
            width = SCALE_ROUNDINGS * self.u_acc
            return self._with_tf32([(-width, width)])
        if centres is None:
            return self.allowed_row_scale_errors(scale)
        width = SCALE_ROUNDINGS * self.u_acc
        if self.u_out > self.u_acc:
            width += CONVENTION_SLACK * self.u_out
        return self._with_tf32([(c - width, c + width) for c in centres])

    def allowed_row_scale_errors(
        self, scale: float, centres: Sequence[float] | None = None
    ) -> list[tuple[float, float]]:
        """The relative scale errors one row (channel) may show: in a narrow output
        format, between the conventions' centres and :data:`ROW_SLACK` of its unit
        roundoff beyond (a row's values round twice with a bias of their own); none but
        the scale's own roundings under ``rounding="stochastic"``."""
        width = SCALE_ROUNDINGS * self.u_acc
        if self.rounding == "stochastic":
            return self._with_tf32([(-width, width)])
        if centres is None:
            centres = [0.0]
            if self.u_out > self.u_acc and scale != 0 and math.isfinite(scale):
                rounded = float(_round_to_format(np.array([scale]), self.output_format)[0])
                centres.append(rounded / scale - 1.0)
        if self.u_out > self.u_acc:
            width += ROW_SLACK * self.u_out
            return self._with_tf32([(min(centres) - width, max(centres) + width)])
        return self._with_tf32([(c - width, c + width) for c in centres])

    def _with_tf32(self, intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if self.precision == "tf32":
            intervals = [*intervals, (-(2.0**-9), 2.0**-9)]
        return intervals

    def describe(self) -> str:
        """One line: accumulation, precision and the checks that are on."""
        off = [name for name in CHECKS if name not in self.checks]
        width = accumulator_width(self.accumulate)
        if width is None or width[1] is None:
            text = f"accumulation in {self.accumulate}"
        else:
            bits, every = width
            text = f"accumulation in {bits} bits, promoted to {PROMOTED_TO} every {every} products"
        if self.precision != "exact":
            text += f", {self.precision} multiplicands"
        if self.algorithm != "direct":
            text += f", {self.algorithm} algorithm"
        if self.rounding != "nearest":
            text += f", {self.rounding} rounding"
        if off:
            text += f"; {', '.join(off)} check{'s' if len(off) > 1 else ''} off"
        return text


#: An accumulator of ``p`` significant bits, perhaps promoted to float32 every ``m`` products.
_WIDTH = re.compile(r"(\d+) bits(?: every (\d+))?")
#: Where a promoted accumulator's partial sums go.
PROMOTED_TO = "float32"


def accumulator_width(name: str) -> tuple[int, int | None] | None:
    """``(p, m)`` of ``"p bits"`` (m None) or ``"p bits every m"``; None for anything else."""
    found = _WIDTH.fullmatch(name)
    if found is None:
        return None
    bits, every = int(found.group(1)), found.group(2)
    if not 2 <= bits <= 53 or (every is not None and int(every) < 1):
        return None
    return bits, None if every is None else int(every)


def accumulation_roundoff(name: str) -> float:
    """The unit roundoff of a format by name, or of an accumulator of ``"p bits"``
    (promoted or not: ``"p bits every m"``)."""
    if name in UNIT_ROUNDOFF:
        return UNIT_ROUNDOFF[name]
    width = accumulator_width(name)
    if width is None:
        raise ValueError(f"accumulation {name!r}: expected {ACCUMULATE_FORMS}")
    return 2.0 ** -width[0]


def promotion_interval(name: str) -> int | None:
    """Every how many products an accumulator ``"p bits every m"`` adds its partial sum
    into float32 (``m``); None for a format or an accumulator that is never promoted."""
    width = accumulator_width(name)
    return None if width is None else width[1]


def _round_to_format(values: npt.NDArray[np.float64], name: str) -> npt.NDArray[np.float64]:
    """``values`` rounded to nearest (ties to even) in format ``name``, as float64."""
    if name in ("float32", "float64", "float16"):
        rounded: npt.NDArray[np.float64] = values.astype(name).astype(np.float64)
        return rounded
    from ..formats import round_to

    return round_to(values.astype(np.float64), name)


ACCUMULATE_FORMS = (
    f"one of {', '.join(ACCUMULATIONS)}, 'p bits' (an accumulator of p significant bits, "
    "2 to 53) or 'p bits every m' (one whose partial sums go into float32 every m products)"
)


def check_accumulate(accumulate: str | None, dtype: str | None = None) -> str | None:
    """``accumulate`` checked: None (each case's default), a name in :data:`ACCUMULATIONS`,
    ``"p bits"`` or ``"p bits every m"`` (written with single spaces, as here)."""
    if accumulate is None:
        return None
    if not isinstance(accumulate, str) or (
        accumulate not in ACCUMULATIONS and accumulator_width(accumulate) is None
    ):
        raise ValueError(f"accumulate must be {ACCUMULATE_FORMS}, or None; got {accumulate!r}")
    return accumulate


def check_precision(precision: object) -> str:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def check_skip(skip: str | Iterable[str] | None) -> frozenset[str]:
    """The checks left on after ``skip`` (a name of :data:`CHECKS` or several)."""
    if skip is None:
        return frozenset(CHECKS)
    names = [skip] if isinstance(skip, str) else list(skip)
    for name in names:
        if not isinstance(name, str) or name not in CHECKS:
            raise ValueError(f"skip: {name!r} is not one of {CHECKS}")
    left = frozenset(CHECKS) - set(names)
    if not left:
        raise ValueError(f"skip: {sorted(names)} leaves nothing to check; keep one of {CHECKS}")
    return left


def check_rounding(rounding: object) -> str:
    if not isinstance(rounding, str) or rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    return rounding


def check_algorithm(algorithm: object) -> str:
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return algorithm


def rule_for(
    dtype: str,
    precision: str = "exact",
    accumulate: str | None = None,
    skip: str | Iterable[str] | None = None,
    strict: bool = True,
    algorithm: str = "direct",
    rounding: str = "nearest",
) -> Rule:
    """The rule for a case of ``dtype``; ``accumulate=None`` takes the dtype's default.

    ``precision="tf32"`` applies to float32 and complex64 cases only (TF32
    rounds float32 multiplicands); for another dtype it is a ``ValueError``
    unless ``strict=False``, which keeps ``"exact"`` there.

    >>> rule_for("bfloat16").accumulate, rule_for("float64").accumulate
    ('float32', 'float64')
    >>> rule_for("float16", accumulate="float16").u_acc == 2.0**-11
    True
    """
    if dtype not in OUTPUT_FORMAT:
        raise ValueError(f"dtype must be one of {tuple(OUTPUT_FORMAT)}, got {dtype!r}")
    check_precision(precision)
    if precision == "tf32" and dtype not in ("float32", "complex64"):
        if strict:
            raise ValueError(
                f"precision 'tf32' applies to float32 and complex64 cases, not {dtype}"
            )
        precision = "exact"
    chosen = check_accumulate(accumulate) or DEFAULT_ACCUMULATION[dtype]
    return Rule(dtype, chosen, precision, check_skip(skip), check_algorithm(algorithm),
                check_rounding(rounding))  # fmt: skip
