"""What a failing array shows: its errors against the yardstick, a sample of its positions,
and where along each axis it goes wrong.

Everything a cause is tested on comes from here: the errors of every judged
element (to localize and to fit a scale factor) and a sample of a few
hundred positions, the worst ones first (to compare with a mistake computed
there only, :mod:`.terms`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ...tolerance.layout import Groups
from ...tolerance.rule import MARGIN_BITS, Z_LIMIT, Rule
from ..report import Measured, difference, measure

if TYPE_CHECKING:
    from ...golden.fixture import Fixture

__all__ = ["Evidence", "Part", "evidence"]

Float = npt.NDArray[np.float64]
Index = npt.NDArray[np.int64]
#: The worst positions every sample holds, then this many in all (at most).
WORST = 32
SAMPLE = 256
#: The fewest elements a group's scale error is trusted from.
GROUP = 16
#: A group of elements is wrong when its errors' mean square exceeds a correct kernel's
#: this many times (the precision check's margin), right when below the second figure.
WRONG_SQUARES = 4.0**MARGIN_BITS
RIGHT_SQUARES = 4.0


def _wide(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


@dataclass
class Evidence:
    """One failing array's judged elements, their errors, and a sample of positions.

    Attributes
    ----------
    name : str
        The array.
    groups : Groups
        Its judged elements (all, or a compact fixture's positions).
    kernel, expected : ndarray
        The kernel's and the expected values there, widened.
    error_scale, rounded, yardstick, bound : ndarray
        Per judged element, as the verdict measured them.
    squares : ndarray
        ``(|error| / yardstick)**2``: how many times a correct kernel's error each is.
    sample : ndarray
        Indices into the judged elements: the worst first, then spread at random.
    terms : int
        The terms each element sums.
    allowed : list of (float, float)
        The scale errors a correct kernel's rounding conventions may show
        (:meth:`~uscale_ref.tolerance.rule.Rule.allowed_scale_errors`).
    scale : float
        The array's scale factor.
    normwise : ndarray or None
        Under ``algorithm="fft"`` or ``"winograd"``, each element's normwise error size
        (:func:`uscale_ref.verdict.algorithm.normwise`).
    """

    def off(self, beta: float, spread: float) -> float:
        """How many standard errors ``beta`` lies from every allowed scale error."""
        distance = float(_distance(np.array([beta]), self.allowed)[0])
        if distance == 0:
            return 0.0
        return distance / spread if spread > 0 else math.inf

    name: str
    rule: Rule
    groups: Groups
    kernel: npt.NDArray[Any]
    expected: npt.NDArray[Any]
    error_scale: Float
    rounded: Float
    yardstick: Float
    bound: Float
    squares: Float
    sample: Index
    terms: int
    allowed: list[tuple[float, float]]
    scale: float
    normwise: Float | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def difference(self) -> npt.NDArray[Any]:
        return difference(self.kernel, self.expected)

    @property
    def scale_terms(self) -> tuple[Float, Float]:
        """Per element ``Re(r conj e)`` and ``|e|^2`` (0 where either is not finite): their
        sums over a group give its scale error (:func:`fit`)."""
        if "scale_terms" not in self._cache:
            r, e = self.difference, self.expected
            usable = np.isfinite(r) & np.isfinite(e)
            r, e = np.where(usable, r, 0), np.where(usable, e, 0)
            with np.errstate(all="ignore"):
                self._cache["scale_terms"] = (np.real(r * np.conj(e)), np.real(e * np.conj(e)))
        terms: tuple[Float, Float] = self._cache["scale_terms"]
        return terms

    @property
    def flat(self) -> Index:
        """The sample's flat positions in the whole array."""
        return self.groups.flat[self.sample]

    @property
    def axes(self) -> tuple[str, ...]:
        return self.groups.layout.axes

    def by_index(self, axis: int) -> Float:
        """The errors' mean square (in yardsticks) per index along ``axis`` (NaN: none
        judged there)."""
        return next(v.squares for v in views(self) if v.axis == axis)

    def bits(self, where: npt.NDArray[np.bool_] | None = None) -> float:
        """The precision (bits) of the judged elements, or of those ``where`` holds."""
        squares = self.squares if where is None else self.squares[where]
        if squares.size == 0:
            return math.inf
        mean = float(np.mean(squares))
        return math.inf if mean == 0 else self.rule.bits - 0.5 * math.log2(mean)


@dataclass(frozen=True)
class Part:
    """Where an array goes wrong: for each axis, the wrong indices (None: the whole axis)."""

    indices: tuple[Index | None, ...]

    def mask(self, evidence: Evidence) -> npt.NDArray[np.bool_]:
        inside = np.ones(evidence.groups.size, dtype=bool)
        for axis, wrong in enumerate(self.indices):
            if wrong is not None:
                inside &= np.isin(evidence.groups.coords[axis], wrong)
        return inside

    @property
    def whole(self) -> bool:
        return all(wrong is None for wrong in self.indices)


def evidence(
    case: Fixture, name: str, actual: Any, rule: Rule, measured: Measured | None = None
) -> Evidence:
    """The :class:`Evidence` of result ``name`` (the whole array as the kernel gave it), from
    what the verdict ``measured`` when it kept that."""
    m = measured or measure(case, name, actual, rule)
    squares = np.where(np.isfinite(m.ratio), m.ratio * m.ratio, 1e300)
    allowed = rule.allowed_scale_errors(m.scale, case.scale_centres(name))
    return Evidence(
        name, rule, m.groups, _wide(m.kernel), _wide(m.expected), m.error_scale, m.rounded,
        m.yardstick, m.bound, squares, _sample(m.bound_ratio), case.terms(name), allowed,
        m.scale, m.normwise,
    )  # fmt: skip


def _distance(beta: Float, allowed: list[tuple[float, float]]) -> Float:
    """How far each ``beta`` lies from the nearest allowed interval (0 inside one)."""
    distance = np.full(beta.shape, np.inf)
    for low, high in allowed:
        distance = np.minimum(distance, np.maximum(0.0, np.maximum(low - beta, beta - high)))
    return distance


def _sample(over: Float) -> Index:
    """The worst elements (by share of the bound), then others at random, in all at most
    :data:`SAMPLE`; a fixed generator, so that a verdict is reproducible."""
    size = over.size
    if size <= SAMPLE:
        return np.arange(size, dtype=np.int64)
    key = np.where(np.isnan(over), np.inf, over)
    worst = np.argpartition(-key, WORST)[:WORST]
    worst = worst[np.argsort(-key[worst], kind="stable")]
    rng = np.random.default_rng(0)
    spread = np.unique(rng.integers(0, size, 2 * SAMPLE))
    spread = rng.permutation(spread[~np.isin(spread, worst)])[: SAMPLE - WORST]
    return np.concatenate([worst, np.sort(spread)]).astype(np.int64)


def fit(ev: Evidence, where: npt.NDArray[np.bool_] | None = None) -> tuple[float, float] | None:
    """The relative scale error ``beta`` of the judged elements (or those ``where`` holds)
    and its standard error, from ``sum Re(r conj e) / sum |e|^2``; None where no element
    has a finite, non-zero expected value."""
    a, c = ev.scale_terms
    if where is not None:
        a, c = a[where], c[where]
    total = float(np.sum(c))
    if total <= 0:
        return None
    beta = float(np.sum(a)) / total
    spread = float(np.sqrt(np.sum((a - beta * c) ** 2))) / total
    if not math.isfinite(beta) or not math.isfinite(spread):
        return None
    return beta, spread


@dataclass(frozen=True)
class View:
    """The elements grouped along one axis: by index, or by blocks of positions.

    Attributes
    ----------
    axis : int
        The axis.
    group : ndarray
        The group of each index along the axis.
    squares : ndarray
        Per group, the errors' mean square in yardsticks (NaN: no judged element).
    sums : tuple of ndarray
        Per group, ``sum a``, ``sum c``, ``sum a^2``, ``sum a c``, ``sum c^2`` of the scale
        terms (:attr:`Evidence.scale_terms`).
    count : ndarray
        Per group, its judged elements.
    """

    axis: int
    group: Index
    squares: Float
    sums: tuple[Float, Float, Float, Float, Float]
    count: Float

    def betas(self) -> Float:
        """The scale error of each group."""
        n, e = self.sums[0], self.sums[1]
        with np.errstate(all="ignore"):
            return np.where(e > 0, n / e, 0.0)

    def z(self, ev: Evidence, reference: float | None = None) -> Float:
        """Per group: its scale error in standard errors from the allowed ones (or from
        ``reference``)."""
        _, e, aa, ac, cc = self.sums
        beta = self.betas()
        with np.errstate(all="ignore"):
            # The expanded sum of squares loses about a rounding of its terms' size: no
            # spread below that is known.
            squares = np.maximum(aa - 2 * beta * ac + beta * beta * cc, 0.0)
            floor = 4 * 2.0**-53 * (aa + beta * beta * cc)
            spread = np.sqrt(squares + floor) / e
            if reference is None:
                distance = _distance(beta, ev.allowed)
            else:
                distance = np.abs(beta - reference)
                # A group without spread (every error exactly the factor's): factors a few
                # roundings of the format apart are alike.
                alike = (spread == 0) & (distance <= 4 * ev.rule.u_out * abs(1 + reference))
                distance = np.where(alike, 0.0, distance)
            z = np.where(distance == 0, 0.0, distance / spread)
        z[~np.isfinite(z) & (distance > 0)] = np.inf
        z[np.isnan(z) | (e <= 0)] = 0.0
        return z


def views(ev: Evidence) -> list[View]:
    """Each way of grouping the elements along an axis (by index; along the last axis by
    blocks of :data:`~uscale_ref.tolerance.rule.BLOCK` positions too), measured once."""
    from ...tolerance.rule import BLOCK

    if "views" not in ev._cache:
        found = []
        layout = ev.groups.layout
        a, c = ev.scale_terms
        weights = (np.ones(ev.groups.size), ev.squares, a, c, a * a, a * c, c * c)
        for axis in range(len(ev.axes)):
            size = layout.shape[axis]
            per_index = [_sum_along(ev, w, axis) for w in weights]
            groupings = [np.arange(size)]
            if axis == len(ev.axes) - 1 and size > BLOCK:
                groupings.append(np.arange(size) // BLOCK)
            for group in groupings:
                count = int(group[-1]) + 1 if size else 0
                number, total, *sums = (np.bincount(group, weights=v, minlength=count)
                                        for v in per_index)  # fmt: skip
                with np.errstate(all="ignore"):
                    squares = np.where(number > 0, total / np.maximum(number, 1), np.nan)
                found.append(View(axis, group, squares, tuple(sums), number))  # type: ignore[arg-type]
        ev._cache["views"] = found
    result: list[View] = ev._cache["views"]
    return result


def wrong_part(ev: Evidence) -> Part | None:
    """The part of the array that goes wrong, when the rest is right; None when every axis
    is wrong throughout (or no clear line divides the two).

    An index along an axis is wrong when its elements' errors are larger than a correct
    kernel's (their mean square, :data:`WRONG_SQUARES`) or biased like a scale error
    (:data:`~uscale_ref.tolerance.rule.Z_LIMIT` standard errors). The rest must then be
    right: within the bound, as precise as a correct kernel, and, where the part is off by
    a factor, without that factor.
    """
    candidates = localizing(ev)
    best: Part | None = None
    best_size = ev.groups.size
    for chosen in _subsets(len(candidates)):
        indices: list[Index | None] = [None] * len(ev.axes)
        for which in chosen:
            axis, wrong = candidates[which]
            if indices[axis] is not None:
                break
            indices[axis] = wrong
        else:
            part = Part(tuple(indices))
            inside = part.mask(ev)
            size = int(np.count_nonzero(inside))
            if size < best_size and _rest_is_right(ev, inside):
                best, best_size = part, size
    return best


def _subsets(count: int) -> list[tuple[int, ...]]:
    from itertools import combinations

    return [c for r in range(1, count + 1) for c in combinations(range(count), r)]


def _sum_along(ev: Evidence, values: Float, axis: int) -> Float:
    """Per index along ``axis``, the sum of ``values`` (one per judged element)."""
    layout = ev.groups.layout
    if ev.groups.whole:
        others = tuple(i for i in range(len(layout.shape)) if i != axis)
        total: Float = values.reshape(layout.shape).sum(axis=others)
        return total
    summed = np.bincount(ev.groups.coords[axis], weights=values, minlength=layout.shape[axis])
    return np.asarray(summed, dtype=np.float64)


def localizing(ev: Evidence) -> list[tuple[int, Index]]:
    """Per axis (and per block of positions along the last), the indices that are wrong,
    where some are and some are not: less precise than a correct kernel, or off by a factor
    (from the allowed scale errors, or from the whole array's)."""
    whole = fit(ev)
    found: list[tuple[int, Index]] = []
    for view in views(ev):
        wrong_group = (view.squares > WRONG_SQUARES) | (view.z(ev) > Z_LIMIT)
        if whole is not None:
            # Off by more than the whole array is, and distinguishably so.
            farther = _distance(view.betas(), ev.allowed) > _distance(
                np.array([whole[0]]), ev.allowed
            )
            wrong_group |= farther & (view.z(ev, whole[0]) > Z_LIMIT)
        judged = ~np.isnan(ev.by_index(view.axis))
        wrong = judged & wrong_group[view.group]
        count, total = int(np.count_nonzero(wrong)), int(np.count_nonzero(judged))
        if count == 0 or count >= 0.9 * total:
            continue  # nearly every index: the few others are chance, not a line
        per_group = ev.groups.size / max(1, total)
        if per_group < 2 and count > max(1, total // 4):
            continue  # single elements: only a few of them can be told apart
        found.append((view.axis, np.flatnonzero(wrong)))
    return found


def uniform(ev: Evidence, beta: float) -> bool:
    """Whether no group of elements (batch item, row, position, block of positions) is off
    by a factor other than ``beta``: by a tenth of it or more, distinguishably, in a group
    of at least :data:`GROUP` elements (the standard error of fewer is not to be trusted)."""
    for view in views(ev):
        apart = np.abs(view.betas() - beta) > 0.1 * abs(beta)
        if np.any(apart & (view.z(ev, beta) > Z_LIMIT) & (view.count >= GROUP)):
            return False
    return True


def _rest_is_right(ev: Evidence, inside: npt.NDArray[np.bool_]) -> bool:
    """Whether the elements outside ``inside`` are right: within the bound, as precise as a
    correct kernel, and, where the part is off by a factor, without that factor."""
    outside = ~inside
    if not outside.any() or not inside.any():
        return False
    over = np.count_nonzero(ev.squares[outside] * ev.yardstick[outside] ** 2
                            > ev.bound[outside] ** 2)  # fmt: skip
    if over or float(np.mean(ev.squares[outside])) > RIGHT_SQUARES:
        return False
    fitted_in, fitted_out = fit(ev, inside), fit(ev, outside)
    if fitted_out is not None and ev.off(*fitted_out) > Z_LIMIT:
        return False  # the rest is off by a factor itself
    if fitted_in is not None and fitted_out is not None:
        (beta_in, se_in), (beta_out, se_out) = fitted_in, fitted_out
        if ev.off(beta_in, se_in) > Z_LIMIT:  # the part is off by a factor: the rest is not
            return abs(beta_in - beta_out) > Z_LIMIT * math.hypot(se_in, se_out)
    return True
