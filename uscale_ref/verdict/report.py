"""Judging one result array: the element-wise bound, the precision achieved and the errors' bias.

:func:`judge_array` is the whole verdict on one array of one case; an
:class:`ArrayReport` holds what it measured and says it in words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..tolerance.layout import Groups, Layout, describe_indices, groups_of, layout_of
from ..tolerance.rule import MARGIN_BITS, UNIT_ROUNDOFF, Z_LIMIT, Rule
from .accumulator import AccumulatorFigure, accumulator_figure
from .bias import BiasFigure, bias_figure
from .precision import PrecisionFigure, bits_of, histogram, precision_figure, ratios

if TYPE_CHECKING:
    from ..golden.fixture import Fixture

__all__ = ["ArrayReport", "index_pattern", "judge_array", "with_reference"]

Float = npt.NDArray[np.float64]
_SCALE_OF = {
    "output": "output",
    "grad_input": "grad_input",
    "grad_weight": "grad_weight",
    "grad_bias": "grad_bias",
}


@dataclass(frozen=True)
class Measured:
    """What :func:`judge_array` measured on each judged element of a failing array, for the
    diagnosis to start from: the values (as given), their groups, and the figures."""

    groups: Groups
    kernel: npt.NDArray[Any]
    expected: npt.NDArray[Any]
    error_scale: Float
    rounded: Float
    yardstick: Float
    bound: Float
    ratio: Float
    bound_ratio: Float
    scale: float
    normwise: Float | None = None


@dataclass(frozen=True)
class ArrayReport:
    """How one result array compares with its expected value.

    Attributes
    ----------
    name : str
        ``output``, ``grad_input``, ``grad_weight`` or ``grad_bias``.
    rule : Rule
        The rule it was judged by.
    max_abs_error : float
        The largest ``|actual - expected|``.
    max_units : float
        The largest ``|actual - expected| / (u * error_scale)``, ``u`` the
        output format's unit roundoff: the error in units of rounding.
    bound_ratio : float
        The largest ``|actual - expected| / bound``: at most 1 passes the bound.
    worst_index : tuple of int
        Where ``bound_ratio`` is reached.
    actual_at_worst, expected_at_worst : float or complex
        The two values there.
    units_allowed_at_worst : float
        The bound there, in the units of ``max_units``.
    failing, size : int
        How many elements exceed the bound, of how many judged.
    pattern : str
        Where the failing elements lie (:func:`index_pattern`), e.g. ``"o in 64..127"``.
    precision : PrecisionFigure
        The significant bits achieved, overall, per row, item and tile.
    bias : BiasFigure
        The relative scale error the errors show, and how far from allowed.
    layout : Layout
        The array's (items, rows, positions) view.
    reference_bits : float or None
        The precision a correct evaluation (uscale_ref in the case's dtype)
        reaches on the same case, when it was computed.
    reference_counts : ndarray or None
        Its error histogram (as :attr:`PrecisionFigure.counts`).
    whole : bool
        Whether every element was judged (False for a compact fixture, judged at
        its stored positions).
    measured : Measured or None
        The element-wise figures, kept (``judge_array(..., keep=True)``) for a
        failing array until its diagnosis has read them.
    accumulator : AccumulatorFigure or None
        Under a declared promoted accumulator with bfloat16 or float16 results: how
        often the results differ from the exact ones rounded, against what that
        accumulator gives (part of the precision check).
    """

    name: str
    rule: Rule
    max_abs_error: float
    max_units: float
    bound_ratio: float
    worst_index: tuple[int, ...]
    actual_at_worst: float | complex
    expected_at_worst: float | complex
    units_allowed_at_worst: float
    failing: int
    size: int
    pattern: str
    precision: PrecisionFigure
    bias: BiasFigure
    layout: Layout
    reference_bits: float | None = None
    reference_counts: npt.NDArray[np.int64] | None = None
    whole: bool = True
    measured: Measured | None = field(default=None, repr=False, compare=False)
    accumulator: AccumulatorFigure | None = None

    @property
    def bound_passed(self) -> bool:
        """Whether every element is within its bound."""
        return self.failing == 0

    @property
    def passed(self) -> bool:
        """Whether the array passes every check that is on."""
        checks = self.rule.checks
        return (
            ("bound" not in checks or self.bound_passed)
            and ("precision" not in checks or self.precision_passed)
            and ("bias" not in checks or self.bias.passed)
        )

    @property
    def precision_passed(self) -> bool:
        """The precision check: the bits reached, and a declared accumulator's rate of
        results off the exact ones rounded (:mod:`uscale_ref.verdict.accumulator`)."""
        return self.precision.passed and (self.accumulator is None or self.accumulator.passed)

    @property
    def failed_checks(self) -> list[str]:
        """The checks (that are on) this array fails: ``bound``, ``precision``, ``bias``."""
        results = {
            "bound": self.bound_passed,
            "precision": self.precision_passed,
            "bias": self.bias.passed,
        }
        return [name for name, ok in results.items() if name in self.rule.checks and not ok]

    def describe(self, case_id: str) -> str:
        """The failing checks in words, one line each (a line on the bound when all pass)."""
        lines = []
        failed = self.failed_checks
        if "bound" in failed or not failed:
            lines.append(self._bound_line(case_id))
        if "precision" in failed and not self.precision.passed:
            lines.append(self._precision_line(case_id))
        if "precision" in failed and self.accumulator is not None and not self.accumulator.passed:
            lines.append(f"{case_id}: {self.name}: {self.accumulator.describe()}")
        if "bias" in failed:
            lines.append(self._bias_line(case_id))
        return "\n".join(lines)

    def _bound_line(self, case_id: str) -> str:
        where = ", ".join(map(str, self.worst_index))
        line = (
            f"{case_id}: {self.name}[{where}] = {self.actual_at_worst!r}, expected "
            f"{self.expected_at_worst!r} (|error| {_number(self._worst_error)} is "
            f"{_number(self._worst_units)} units of rounding, allowed "
            f"{_number(self.units_allowed_at_worst)} there)"
        )
        if self.failing:
            judged = "" if self.whole else " judged"
            line += f"; {self.failing} of {self.size}{judged} elements fail"
            if self.pattern:
                line += f", at {self.pattern}"
        return line

    @property
    def _worst_error(self) -> float:
        a, e = self.actual_at_worst, self.expected_at_worst
        if a == e or (_isnan(a) and _isnan(e)):
            return 0.0
        return float(abs(complex(a) - complex(e)))

    @property
    def _worst_units(self) -> float:
        if self._worst_error == 0:
            return 0.0
        return self.bound_ratio * self.units_allowed_at_worst

    def _precision_line(self, case_id: str) -> str:
        p = self.precision
        line = (
            f"{case_id}: {self.name}: precision {p.short()}, at least {p.required:g} required "
            f"({self.rule.output_format} has {p.format_bits}"
        )
        if self.reference_bits is not None:
            if math.isinf(self.reference_bits) and self.reference_bits > 0:
                line += "; a correct evaluation is exact here"
            else:
                line += f"; a correct evaluation reaches {_bits(self.reference_bits)} here"
        line += ")"
        short_rows = int(np.count_nonzero(p.row_bits < p.required))
        if p.bits >= p.required or short_rows:
            row, block = p.worst_tile
            line += (
                f"; least precise tile {self.layout.tile_name(row, block)}: "
                f"{_bits(float(p.tile_bits[row, block]))}; "
                f"{p.failing_tiles} of {p.judged_tiles} tiles short"
            )
            judged_rows = int(np.count_nonzero(~np.isnan(p.row_bits)))
            if self.layout.row is not None and 0 < short_rows < judged_rows:
                line += f", in {short_rows} of {judged_rows} rows ({self._short_rows()})"
        return line

    def _short_rows(self) -> str:
        p = self.precision
        letter = self.layout.row or "row"
        hit = np.flatnonzero(p.row_bits < p.required)
        judged = np.flatnonzero(~np.isnan(p.row_bits))
        between = judged[(judged >= hit[0]) & (judged <= hit[-1])] if hit.size else judged
        if hit.size > 1 and between.size == hit.size:
            return f"{letter} in {hit[0]}..{hit[-1]}"
        return describe_indices(hit, p.row_bits.size, letter) if hit.size else "none"

    def _bias_line(self, case_id: str) -> str:
        """The errors' bias as measured: what it is, not what it means (a whole-array scale,
        or a part of the array off by more: the likely cause says which)."""
        b = self.bias
        line = (
            f"{case_id}: {self.name}: errors biased along the expected values, by "
            f"{b.estimate:+.2g} of them over the array (± {b.standard_error:.1g}; "
            f"{b.z:.3g} standard errors from the allowed {b.allowed_text()})"
        )
        if b.row_z.size > 1 and np.max(b.row_z) > b.limit:
            row = b.worst_row
            failing = b.row_z > b.limit
            line += (
                f"; {int(np.count_nonzero(failing))} of {b.row_z.size} rows biased, most "
                f"{self.layout.row} = {row}: {b.row_estimates[row]:+.2g} ({b.row_z[row]:.3g} "
                "standard errors)"
            )
        return line

    @property
    def least_tile_bits(self) -> float:
        """The precision of the least precise tile (inf for an empty array)."""
        tiles = self.precision.tile_bits[~np.isnan(self.precision.tile_bits)]
        return float(np.min(tiles)) if tiles.size else math.inf

    def summary(self) -> str:
        """One short line: precision, bias and bound use, whether or not it passes."""
        return (
            f"{self.name}: {self.precision.short()} of {self.rule.output_format}'s "
            f"{self.precision.format_bits} (least tile {_bits(self.least_tile_bits)}), "
            f"bias {self.bias.estimate:+.1e} ({self.bias.z:.2g} s.e.), "
            f"largest error {self.bound_ratio:.2g} of the bound"
        )


def _bits(bits: float) -> str:
    if math.isinf(bits) and bits > 0:
        return "exact"
    return f"{bits:.1f} bits"


def _number(value: float) -> str:
    return f"{value:.3g}"


def _isnan(value: float | complex) -> bool:
    return bool(np.isnan(value))


def index_pattern(failing: npt.NDArray[np.bool_], axes: Sequence[str]) -> str:
    """Where the ``True`` elements lie, axis by axis, in words.

    An axis where every index fails is left out; otherwise its failing
    indices are a single value, a range, a residue class (``l ≡ 255 (mod
    256)``), or listed.

    >>> mask = np.zeros((2, 8, 512), dtype=bool)
    >>> mask[:, 4:, 255::256] = True
    >>> index_pattern(mask, ("n", "o", "l"))
    'o in 4..7, l ≡ 255 (mod 256)'
    >>> mask[:, 5] = False
    >>> index_pattern(mask, ("n", "o", "l"))
    'o in 4..7 (3 of those 4), l ≡ 255 (mod 256)'
    """
    parts = []
    for axis, letter in enumerate(axes):
        others = tuple(i for i in range(failing.ndim) if i != axis)
        hit = np.flatnonzero(np.any(failing, axis=others))
        size = failing.shape[axis]
        if hit.size == 0 or hit.size == size:
            continue
        parts.append(describe_indices(hit, size, letter))
    return ", ".join(parts)


def _scalar(value: Any) -> float | complex:
    return complex(value) if np.iscomplexobj(value) else float(value)


def _wide(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def difference(actual: npt.NDArray[Any], expected: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``actual - expected`` widened, 0 where the two are equal (equal infinities) or both NaN."""
    a, e = _wide(actual), _wide(expected)
    with np.errstate(all="ignore"):
        diff = a - e
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    diff[same] = 0
    result: npt.NDArray[Any] = diff
    return result


def rounded_magnitude(
    fixture: Fixture, name: str, expected: npt.NDArray[Any], groups: Groups | None = None
) -> Float:
    """``M``: what a kernel may round, at most: ``|expected|``, plus ``|scale * bias[o]|``
    for the output (a kernel may round the sum before adding the bias). ``expected``
    is the whole array, or its values at the elements of ``groups``."""
    magnitude: Float = np.abs(_wide(expected))
    bias = fixture.input("bias")
    if name == "output" and bias is not None:
        scale = abs(float(fixture.metadata["scales"]["output"]))
        offset = scale * np.abs(_wide(np.asarray(bias)))
        if groups is None:
            magnitude = magnitude + offset.reshape(-1, 1)  # (O, 1) meets (N, O, L) and (O, L)
        else:
            magnitude = magnitude + offset[groups.row]
    magnitude[~np.isfinite(magnitude)] = 0.0
    return magnitude


def judge_array(
    fixture: Fixture,
    name: str,
    actual: npt.ArrayLike,
    rule: Rule,
    reference: npt.ArrayLike | None = None,
    keep: bool = False,
) -> ArrayReport:
    """The verdict on result ``name`` of ``fixture``; shape and dtype must match exactly.

    A compact fixture judges ``actual`` (the whole array) at its stored
    positions. ``reference``, when given, is a correct evaluation of the same
    array (:func:`uscale_ref.verdict.reference.correct_results`): its
    precision is reported beside the kernel's. ``keep``: a failing array's
    report keeps its element-wise figures (:class:`Measured`) for the diagnosis.
    """
    if name not in fixture.expected:
        raise ValueError(
            f"{fixture.id}: no expected {name!r} in this case (it has {sorted(fixture.expected)})"
        )
    expected = fixture.expected[name]
    shape = fixture.result_shape(name)
    actual = np.asarray(actual)
    if actual.shape != shape:
        raise ValueError(f"{fixture.id}: {name} has shape {actual.shape}, expected {shape}")
    if actual.dtype != expected.dtype:
        raise TypeError(f"{fixture.id}: {name} has dtype {actual.dtype}, expected {expected.dtype}")
    positions = fixture.positions(name)
    m = measure(fixture, name, actual, rule)
    groups, judged, expected, scale = m.groups, m.kernel, m.expected, m.scale
    bound, bound_ratio, yardstick, ratio = m.bound, m.bound_ratio, m.yardstick, m.ratio
    layout = groups.layout
    with np.errstate(all="ignore"):
        diff = difference(judged, expected)
        error = np.abs(diff)
        unit = rule.u_out * m.error_scale
        units = ratios(error, unit)
        allowed_units = np.where(unit > 0, bound / unit, np.inf)
    precision = precision_figure(ratio, groups, rule.bits, MARGIN_BITS)
    accumulator = accumulator_figure(fixture, name, judged, expected, rule)
    centres = fixture.scale_centres(name)
    with np.errstate(all="ignore"):
        bias = bias_figure(
            diff,
            _wide(expected),
            groups,
            rule.allowed_scale_errors(scale, centres),
            Z_LIMIT,
            rule.allowed_row_scale_errors(scale, centres),
        )
    reference_bits = reference_counts = None
    if reference is not None:
        reference_bits, reference_counts = _reference_figures(
            reference, positions, expected, yardstick, rule
        )
    failing = ~(bound_ratio <= 1.0)
    if expected.size == 0:
        worst: tuple[int, ...] = ()
        at_worst: tuple[float | complex, float | complex] = (0.0, 0.0)
        worst_ratio, worst_units, worst_allowed = 0.0, 0.0, 0.0
    else:
        at = int(np.argmax(np.where(np.isnan(bound_ratio), np.inf, bound_ratio)))
        worst = tuple(int(c[at]) for c in groups.coords)
        at_worst = (_scalar(judged[at]), _scalar(expected[at]))
        worst_ratio = float(bound_ratio[at])
        worst_units = float(np.max(units))
        worst_allowed = float(allowed_units[at])
    report = ArrayReport(
        name=name,
        rule=rule,
        max_abs_error=float(np.max(error)) if error.size else 0.0,
        max_units=worst_units,
        bound_ratio=worst_ratio,
        worst_index=worst,
        actual_at_worst=at_worst[0],
        expected_at_worst=at_worst[1],
        units_allowed_at_worst=worst_allowed,
        failing=int(np.count_nonzero(failing)),
        size=int(expected.size),
        pattern=groups.pattern(failing) if failing.any() else "",
        precision=precision,
        bias=bias,
        layout=layout,
        reference_bits=reference_bits,
        reference_counts=reference_counts,
        whole=groups.whole,
        accumulator=accumulator,
    )
    if keep and not report.passed:
        report = replace(report, measured=m)
    return report


def measure(fixture: Fixture, name: str, actual: npt.ArrayLike, rule: Rule) -> Measured:
    """The element-wise figures of result ``name`` (the whole array ``actual``, judged at a
    compact fixture's positions): the bound, the yardstick and each element's share of
    them."""
    positions = fixture.positions(name)
    groups = groups_of(layout_of(name, fixture.result_shape(name)), positions)
    flat = np.asarray(actual).reshape(-1)
    judged = flat if positions is None else flat[positions]
    expected = fixture.expected[name].reshape(-1)
    with np.errstate(all="ignore"):
        error = np.abs(difference(judged, expected))
        error_scale = fixture.error_scale(name).reshape(-1)
        rounded = rounded_magnitude(fixture, name, expected, groups)
        terms = fixture.terms(name)
        scale = float(fixture.metadata["scales"][_SCALE_OF[name]])
        normwise = None
        if rule.algorithm != "direct":
            from .algorithm import normwise as norms

            normwise = norms(fixture, name, rule.algorithm)
        bound = rule.bound(terms, error_scale, rounded, scale, normwise)
        yardstick = rule.yardstick(terms, error_scale, rounded, scale, normwise)
        ratio, bound_ratio = ratios(error, yardstick), ratios(error, bound)
    return Measured(groups, judged, expected, error_scale, rounded, yardstick, bound, ratio,
                    bound_ratio, scale, normwise)  # fmt: skip


def _reference_figures(
    reference: npt.ArrayLike,
    positions: npt.NDArray[np.int64] | None,
    expected: npt.NDArray[Any],
    yardstick: Float,
    rule: Rule,
) -> tuple[float, npt.NDArray[np.int64]]:
    given = np.asarray(reference).reshape(-1)
    given = given if positions is None else given[positions]
    with np.errstate(all="ignore"):
        ratio = ratios(np.abs(difference(given, expected)), yardstick)
    return bits_of(ratio, rule.bits), histogram(ratio)


def with_reference(
    fixture: Fixture,
    report: ArrayReport,
    reference: npt.ArrayLike,
    measured: Measured | None = None,
) -> ArrayReport:
    """``report`` with the precision and error histogram of a correct evaluation of the same
    array (:func:`uscale_ref.verdict.reference.correct_results`) beside the kernel's (and
    without its kept figures, ``measured``, which spare measuring the yardstick again)."""
    name, rule = report.name, report.rule
    expected = fixture.expected[name].reshape(-1)
    positions = fixture.positions(name)
    if measured is not None:
        yardstick = measured.yardstick
    else:
        groups = groups_of(layout_of(name, fixture.result_shape(name)), positions)
        scale = float(fixture.metadata["scales"][_SCALE_OF[name]])
        with np.errstate(all="ignore"):
            rounded = rounded_magnitude(fixture, name, _wide(expected), groups)
            yardstick = rule.yardstick(
                fixture.terms(name), fixture.error_scale(name).reshape(-1), rounded, scale
            )
    bits, counts = _reference_figures(reference, positions, _wide(expected), yardstick, rule)
    return replace(report, reference_bits=bits, reference_counts=counts, measured=None)


def unit_roundoff(dtype: str) -> float:
    """The unit roundoff of a case dtype's output format (of its real part for complex)."""
    from ..tolerance.rule import OUTPUT_FORMAT

    return UNIT_ROUNDOFF[OUTPUT_FORMAT[dtype]]
