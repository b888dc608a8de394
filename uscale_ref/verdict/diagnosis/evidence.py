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

from ..layout import Groups, groups_of, layout_of
from ..precision import ratios
from ..report import difference, rounded_magnitude
from ..rule import MARGIN_BITS, Z_LIMIT, Rule

if TYPE_CHECKING:
    from ...golden.fixture import Fixture

__all__ = ["Evidence", "Part", "evidence"]

Float = npt.NDArray[np.float64]
Index = npt.NDArray[np.int64]
#: The worst positions every sample holds, then this many in all (at most).
WORST = 32
SAMPLE = 256
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
        (:meth:`~uscale_ref.verdict.rule.Rule.allowed_scale_errors`).
    scale : float
        The array's scale factor.
    """

    def off(self, beta: float, spread: float) -> float:
        """How many standard errors ``beta`` lies from every allowed scale error."""
        return (
            float(_distance(np.array([beta]), self.allowed)[0] / spread)
            if spread > 0
            else (0.0 if _distance(np.array([beta]), self.allowed)[0] == 0 else math.inf)
        )

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
    _axes: dict[int, Float] = field(default_factory=dict, repr=False)
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
        if axis not in self._axes:
            size = self.groups.layout.shape[axis]
            index = self.groups.coords[axis]
            total = np.bincount(index, weights=self.squares, minlength=size)
            count = np.bincount(index, minlength=size)
            with np.errstate(all="ignore"):
                self._axes[axis] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return self._axes[axis]

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


def evidence(case: Fixture, name: str, actual: Any, rule: Rule) -> Evidence:
    """The :class:`Evidence` of result ``name`` (the whole array as the kernel gave it)."""
    shape = case.result_shape(name)
    positions = case.positions(name)
    groups = groups_of(layout_of(name, shape), positions)
    kernel = np.asarray(actual).reshape(-1)
    kernel = _wide(kernel if positions is None else kernel[positions])
    expected = _wide(case.expected[name].reshape(-1))
    with np.errstate(all="ignore"):
        error = np.abs(difference(kernel, expected))
        error_scale = case.error_scale(name).reshape(-1)
        rounded = rounded_magnitude(case, name, expected, groups)
        terms = case.terms(name)
        scale = float(case.metadata["scales"][name])
        yardstick = rule.yardstick(terms, error_scale, rounded, scale)
        bound = rule.bound(terms, error_scale, rounded, scale)
        ratio = ratios(error, yardstick)
        over = ratios(error, bound)
    squares = np.where(np.isfinite(ratio), ratio * ratio, 1e300)
    allowed = rule.allowed_scale_errors(scale, case.scale_centres(name))
    return Evidence(
        name, rule, groups, kernel, expected, error_scale, rounded, yardstick, bound,
        squares, _sample(over), terms, allowed, scale,
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


def z_by_index(ev: Evidence, axis: int, reference: float | None = None) -> Float:
    """Per index along ``axis``: the scale error of its elements in standard errors from
    the allowed ones (or from ``reference``)."""
    return _z(ev, ev.groups.coords[axis], ev.groups.layout.shape[axis], reference)


def _z(ev: Evidence, index: Index, size: int, reference: float | None = None) -> Float:
    a, c = ev.scale_terms
    sums = [np.bincount(index, weights=v, minlength=size) for v in (a, c, a * a, a * c, c * c)]
    n, e, aa, ac, cc = sums
    with np.errstate(all="ignore"):
        beta = np.where(e > 0, n / e, 0.0)
        # The expanded sum of squares loses about a rounding of its terms' size: no spread
        # below that is known.
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


def wrong_part(ev: Evidence) -> Part | None:
    """The part of the array that goes wrong, when the rest is right; None when every axis
    is wrong throughout (or no clear line divides the two).

    An index along an axis is wrong when its elements' errors are larger than a correct
    kernel's (their mean square, :data:`WRONG_SQUARES`) or biased like a scale error
    (:data:`~uscale_ref.verdict.rule.Z_LIMIT` standard errors). The rest must then be
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


def _views(ev: Evidence, reference: float | None) -> list[tuple[int, Index, Float, Float]]:
    """Each way of grouping the elements along an axis: ``(axis, group of each index, mean
    squares per group, scale-error z per group)``; along the last axis both single
    positions and blocks of them."""
    from ..rule import BLOCK

    views = []
    layout = ev.groups.layout
    for axis in range(len(ev.axes)):
        size = layout.shape[axis]
        views.append((axis, np.arange(size), ev.by_index(axis), z_by_index(ev, axis, reference)))
        if axis == len(ev.axes) - 1 and size > BLOCK:
            blocks = np.arange(size) // BLOCK
            views.append((axis, blocks, *_by_block(ev, axis, blocks, reference)))
    return views


def localizing(ev: Evidence) -> list[tuple[int, Index]]:
    """Per axis (and per block of positions along the last), the indices that are wrong,
    where some are and some are not: less precise than a correct kernel, or off by a factor
    (from the allowed scale errors, or from the whole array's)."""
    whole = fit(ev)
    found: list[tuple[int, Index]] = []
    for axis, index, squares, z in _views(ev, None):
        wrong_group = (squares > WRONG_SQUARES) | (z > Z_LIMIT)
        if whole is not None:
            # Off by more than the whole array is, and distinguishably so.
            beyond = _betas(ev, axis, index)
            farther = _distance(beyond, ev.allowed) > _distance(np.array([whole[0]]), ev.allowed)
            wrong_group |= farther & (_by_view(ev, axis, index, whole[0]) > Z_LIMIT)
        judged = ~np.isnan(ev.by_index(axis))
        wrong = judged & wrong_group[index]
        count, total = int(np.count_nonzero(wrong)), int(np.count_nonzero(judged))
        if count == 0 or count == total:
            continue
        per_group = ev.groups.size / max(1, total)
        if per_group < 2 and count > max(1, total // 4):
            continue  # single elements: only a few of them can be told apart
        found.append((axis, np.flatnonzero(wrong)))
    return found


def _by_view(ev: Evidence, axis: int, index: Index, reference: float) -> Float:
    if index[-1] == index.size - 1:  # one group per index
        return z_by_index(ev, axis, reference)
    return _by_block(ev, axis, index, reference)[1]


def _betas(ev: Evidence, axis: int, index: Index) -> Float:
    """The scale error of each group of a view."""
    a, c = ev.scale_terms
    group = index[ev.groups.coords[axis]]
    count = int(index[-1]) + 1
    n = np.bincount(group, weights=a, minlength=count)
    e = np.bincount(group, weights=c, minlength=count)
    with np.errstate(all="ignore"):
        return np.where(e > 0, n / e, 0.0)


def uniform(ev: Evidence, beta: float) -> bool:
    """Whether no group of elements (batch item, row, position, block of positions) is off
    by a factor other than ``beta``."""
    for axis, index, _, _ in _views(ev, beta):
        if np.any(_by_view(ev, axis, index, beta) > Z_LIMIT):
            return False
    return True


def _by_block(
    ev: Evidence, axis: int, blocks: Index, reference: float | None = None
) -> tuple[Float, Float]:
    """Mean squares and scale-error z per block of positions along ``axis``."""
    count = int(blocks[-1]) + 1
    index = blocks[ev.groups.coords[axis]]
    total = np.bincount(index, weights=ev.squares, minlength=count)
    number = np.bincount(index, minlength=count)
    with np.errstate(all="ignore"):
        squares = np.where(number > 0, total / np.maximum(number, 1), np.nan)
    return squares, _z(ev, index, count, reference)


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
