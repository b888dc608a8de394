"""Whole results fast: plain float64 sums with a proven error bound, exact where it is not enough.

The exact route (:mod:`.sliced`) computes every sum without error and then
rounds it once. But a rounded result only depends on which side of each
rounding boundary the exact sum lies, and a plain float64 sum usually
tells that already, if its error is bounded. This module computes each sum
and each sum of magnitudes once, in float64, with a bound on the error,
and keeps the rounded value wherever the bound decides it; only the few
elements it leaves open are computed exactly (:mod:`.points`, the same
exact arithmetic at chosen positions). The bytes are those of the exact
route: a correctly rounded value is one number whichever way it is found.

The bound
---------
Let a float64 sum of products :math:`\\sum_i a_i b_i` be computed in any
order, with any grouping, with or without fused multiply-adds, as long as
each product and each partial sum is rounded once to nearest (what every
classical matrix product does). If no term passes through more than
:math:`d` roundings (its *depth*) and nothing underflows or overflows,
each term is carried with a relative error of at most :math:`(1 + u)^d - 1
\\le \\gamma_d = d u / (1 - d u)`, :math:`u = 2^{-53}`, so

.. math::

    |\\hat{s} - s| \\le \\gamma_d \\sum_i |a_i| |b_i| = \\gamma_d M

(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1).
A matrix product with inner length :math:`m` has depth at most :math:`m`,
adding :math:`K` such products adds :math:`K`, and so on; the functions
below cut their sums so that the depth stays near a few hundred even when
a sum has tens of thousands of terms. :math:`M` is the sum of the
magnitudes, which the error scale needs anyway (before its factor), and
is computed the same way; its terms are non-negative, so
:math:`\\hat{M} (1 - \\gamma_d) \\le M \\le \\hat{M} / (1 - \\gamma_d)`.
Complex sums are real ones on the parts (:math:`\\sum |a_r b_r| + |a_i
b_i| \\le \\sum |a|_1 |b|_1`, so the same :math:`M` bounds both parts).

Deciding
--------
* An error scale is :math:`|f| M` rounded up to a few bits
  (:mod:`.bounds`): settled where both ends of
  :math:`|f| \\hat{M} (1 \\pm \\gamma_d)` (a hair wider) round up to the same number.
* A value is :math:`f s` rounded to nearest in the target format: settled
  where both ends of :math:`f \\hat{s} \\pm \\gamma_d |f| \\hat{M}`
  (widened for the roundings of these very operations) round to the same
  number with the same sign. Rounding is monotone, so the exact value,
  which lies between them, rounds to it too.

Float32 has 24 bits and the bound is about :math:`2^{-45}` of :math:`M`, so
all but a few elements in ten thousand settle. A float64 target is as fine
as float64 itself and never settles this way: float64 values come from sums
that are mostly exact (:func:`fine`); their error scales settle as above.
Inputs whose products could underflow or overflow float64 (far outside any
format's range but float64's own) take the exact route whole, and so does
a sum that leaves too many elements open (hostile data: many exact
cancellations).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..geometry import Conv1dGeometry
from ..scales import Conv1dScales
from . import bounds, ozaki, points, sliced

Float = npt.NDArray[np.float64]
Parts = tuple[Float, Float | None]
# A factor: one number, or one per column (broadcast against the sums).
Factor = float | Float

_U = 2.0**-53
# Products and sums are kept this far inside float64's range (powers of two).
_SAFE = 2.0**600
# The longest inner dimension of one product in the weight gradient's sums.
CHUNK = 128
# A sum leaving more than this share of its elements open is computed exactly whole.
OPEN_SHARE = 0.01


def gamma(depth: int) -> float:
    """:math:`\\gamma_d = d u / (1 - d u)`, the relative error of ``depth`` roundings."""
    return depth * _U / (1 - depth * _U)


@dataclass(frozen=True)
class Estimate:
    """Float64 sums of one result: per part (real, then imaginary), the sums of the
    magnitudes, and the most roundings any term went through."""

    sums: list[Float]
    magnitude: Float
    depth: int


def settle_scales(
    magnitude: Float, depth: int, factor: Factor
) -> tuple[Float, npt.NDArray[np.bool_]]:
    """Error scales (``|factor| M`` rounded up) where the bound decides them; the open ones.

    ``magnitude`` is the float64 sum :math:`\\hat{M}`, its terms through at most
    ``depth`` roundings: :math:`M \\in [\\hat{M} (1 - \\gamma_d), \\hat{M} (1 + \\gamma_d (1 +
    2 \\gamma_d))]`; :func:`.bounds.settle` widens for the roundings here.
    """
    spread = gamma(depth) * (1 + 2.0**-20)
    scaled = magnitude * np.abs(factor)
    scale, open_ = bounds.settle(scaled * (1 - spread), scaled * (1 + spread))
    open_ |= (scaled != 0) & ((scaled < 1 / _SAFE) | (scaled > _SAFE))
    return scale, open_


def settle_values(
    sums: list[Float], magnitude: Float, depth: int, factor: Factor, target: str
) -> tuple[list[Float], npt.NDArray[np.bool_]]:
    """Values (``factor * s`` rounded to ``target``) where the bound decides them; where not.

    The exact sum lies within :math:`\\gamma_d M \\le \\gamma_d (1 + 2 \\gamma_d) \\hat{M}`
    of ``sums``; the width also covers the roundings of ``factor * sum`` and of its ends.
    A zero sum of magnitudes means every term is zero: the value is ``+0``.
    """
    reach = magnitude * (gamma(depth) * (1 + 2.0**-20) * np.abs(factor))
    nothing = magnitude == 0
    scaled = magnitude * np.abs(factor)
    open_ = ~nothing & ((scaled < 1 / _SAFE) | (scaled > _SAFE))
    values = []
    for part in sums:
        value = part * factor
        width = reach + np.abs(value) * 2.0**-51
        low = ozaki.round_nearest(value - width, target)
        high = ozaki.round_nearest(value + width, target)
        open_ |= ~nothing & ((low != high) | (np.signbit(low) != np.signbit(high)))
        values.append(np.where(nothing, 0.0, high))
    return values, open_


def _range(operand: Parts | None) -> tuple[float, float]:
    """The smallest non-zero and the largest magnitude of an operand's parts (a missing
    operand stands for ones)."""
    if operand is None:
        return 1.0, 1.0
    smallest, largest = np.inf, 0.0
    for part in operand:
        if part is not None and part.size:
            magnitude = np.abs(part)
            largest = max(largest, float(magnitude.max()))
            smallest = min(smallest, float(np.min(magnitude, where=magnitude > 0, initial=np.inf)))
    return (1.0 if smallest == np.inf else smallest), largest


def usable(
    pairs: Sequence[tuple[Parts | None, Parts | None]], factors: Sequence[float], terms: int
) -> bool:
    """Whether the bound holds: no product of the pairs' entries, no sum of ``terms`` of
    them and nothing the factors make of them leaves float64's normal range (by far)."""
    if not all(np.isfinite(f) and f != 0 for f in factors):
        return False
    low, high = min(1.0, *map(abs, factors)), max(1.0, *map(abs, factors))
    for left, right in pairs:
        (left_small, left_large), (right_small, right_large) = _range(left), _range(right)
        if left_small * right_small * low < 1 / _SAFE:
            return False
        if 4.0 * left_large * right_large * terms * high > _SAFE:
            return False
    return True


def too_open(open_: npt.NDArray[np.bool_]) -> bool:
    """Whether so many elements are open that the exact route is quicker for all."""
    return bool(np.count_nonzero(open_) > max(1000, OPEN_SHARE * open_.size))


# --------------------------------------------------------------------------
# The sums, in float64, on real operands; complex ones combine four.


def _combined(
    product: Callable[[Float, Float], Float], left: Parts, right: Parts, conjugate: bool
) -> list[Float]:
    """``sum left * right`` (``conj(right)`` when ``conjugate``) per part, from real sums."""
    lr, li = left
    rr, ri = right
    if li is None or ri is None:
        return [product(lr, rr)]
    if conjugate:
        return [product(lr, rr) + product(li, ri), product(li, rr) - product(lr, ri)]
    return [product(lr, rr) - product(li, ri), product(li, rr) + product(lr, ri)]


def _taps(x_pad: Float, g: Conv1dGeometry, k: int) -> Float:
    """``x_pad[n, g C_g + i, l s + k d]`` as ``(N, G, C_g, L_out)``: a view with stride 1
    (rows of consecutive elements, as BLAS takes them), a copy otherwise."""
    span = (g.out_length - 1) * g.stride + 1
    start = k * g.dilation
    grouped = x_pad.reshape(x_pad.shape[0], g.groups, g.fan_in, -1)
    taps = grouped[..., start : start + span : g.stride]
    return taps if g.stride == 1 else np.ascontiguousarray(taps)


def _weight_tap(w: Float, g: Conv1dGeometry, k: int, transpose: bool = False) -> Float:
    """Tap ``k`` of the weight as ``(G, O_g, C_g)`` (``(G, C_g, O_g)`` transposed)."""
    tap = w.reshape(g.groups, g.out_channels // g.groups, g.fan_in, g.kernel_size)[..., k]
    return np.ascontiguousarray(tap.transpose(0, 2, 1) if transpose else tap)


def _items(g: Conv1dGeometry, per_item: int, memory: int) -> list[slice]:
    step = max(1, memory // max(1, 8 * per_item))
    return [slice(n, min(g.batch_size, n + step)) for n in range(0, g.batch_size, step)]


def _correlate(x_pad: Float, w: Float, g: Conv1dGeometry, memory: int) -> Float:
    """``sum_{i,k} w[o,i,k] x_pad[n, g C_g + i, l s + k d]``: a product per tap, added."""
    out = np.empty((g.batch_size, g.out_channels, g.out_length))
    for items in _items(g, 2 * (g.in_channels + g.out_channels) * g.out_length, memory):
        block = out[items].reshape(-1, g.groups, g.out_channels // g.groups, g.out_length)
        product = np.empty_like(block)
        for k in range(g.kernel_size):
            np.matmul(_weight_tap(w, g, k), _taps(x_pad[items], g, k), out=product)
            if k == 0:
                block[...] = product
            else:
                block += product
    return out


def _spread(delta: Float, w: Float, g: Conv1dGeometry, memory: int) -> Float:
    """``sum w[o,i,k] delta[n,o,l]`` over ``l s + k d = t + p_l``: per tap, the transposed
    weight times ``delta``, added where the tap lands."""
    length = g.in_length + g.pad_left + g.pad_right
    span = (g.out_length - 1) * g.stride + 1
    out = np.empty((g.batch_size, g.in_channels, g.in_length))
    per_item = 2 * (g.in_channels * length + g.out_channels * g.out_length)
    for items in _items(g, per_item, memory):
        d = delta[items].reshape(-1, g.groups, g.out_channels // g.groups, g.out_length)
        padded = np.zeros((d.shape[0], g.groups, g.fan_in, length))
        product = np.empty((d.shape[0], g.groups, g.fan_in, g.out_length))
        for k in range(g.kernel_size):
            start = k * g.dilation
            np.matmul(_weight_tap(w, g, k, transpose=True), d, out=product)
            padded[..., start : start + span : g.stride] += product
        out[items] = padded.reshape(d.shape[0], g.in_channels, length)[
            :, :, g.pad_left : g.pad_left + g.in_length
        ]
    return out


class _Pairwise:
    """Adds arrays as a balanced binary tree (a binary counter of partial sums), so that
    each passes through at most about ``2 log2(count)`` additions: :meth:`depth`. The
    terms become its own (it adds into them); :meth:`buffer` hands back a spent one."""

    def __init__(self) -> None:
        self.levels: list[Float | None] = []
        self.spent: list[Float] = []

    def add(self, term: Float) -> None:
        for level, held in enumerate(self.levels):
            if held is None:
                self.levels[level] = term
                return
            held += term
            self.spent.append(term)
            term, self.levels[level] = held, None
        self.levels.append(term)

    def buffer(self, shape: tuple[int, ...]) -> Float:
        """An array of ``shape`` to put the next term in (a spent term when there is one)."""
        if self.spent and self.spent[-1].shape == shape:
            return self.spent.pop()
        return np.empty(shape)

    def total(self) -> Float:
        held = [a for a in self.levels if a is not None]
        total = held[0]
        for a in held[1:]:
            total = total + a
        return total

    @staticmethod
    def depth(count: int) -> int:
        """The most additions a term goes through: merges, then the final sum."""
        return 2 * max(1, count).bit_length()


def _chunks(g: Conv1dGeometry) -> list[tuple[int, slice]]:
    """Blocks of the weight gradient's sums: one item, :data:`CHUNK` positions."""
    length = g.out_length
    return [(n, slice(start, min(length, start + CHUNK)))
            for n in range(g.batch_size) for start in range(0, length, CHUNK)]  # fmt: skip


def _gradient(delta: Float, x_pad: Float, g: Conv1dGeometry) -> Float:
    """``sum_{n,l} delta[n,o,l] x_pad[n, g C_g + i, l s + k d]`` as ``(O, C_g K)``: per
    block (:func:`_chunks`) one product with the block's patches (all taps side by side),
    the blocks added pairwise."""
    out_g = g.out_channels // g.groups
    total = _Pairwise()
    taps = np.arange(g.kernel_size) * g.dilation
    item, rows = -1, np.empty(0)
    for n, chunk in _chunks(g):
        if n != item:  # the item's positions as rows of channels, to gather whole rows
            item = n
            rows = np.ascontiguousarray(x_pad[n].reshape(g.groups, g.fan_in, -1).transpose(0, 2, 1))
        d = delta[n, :, chunk].reshape(g.groups, out_g, -1)
        reads = np.arange(chunk.start, chunk.stop)[:, None] * g.stride + taps[None, :]
        patches = rows[:, reads].reshape(g.groups, reads.shape[0], -1)  # (G, chunk, K C_g)
        total.add(np.matmul(d, patches, out=total.buffer((g.groups, out_g, patches.shape[2]))))
    by_tap = total.total().reshape(g.out_channels, g.kernel_size, g.fan_in)
    result: Float = by_tap.transpose(0, 2, 1).reshape(g.out_channels, -1)
    return result


def _bias_gradient(delta: Float, g: Conv1dGeometry) -> Float:
    """``sum_{n,l} delta[n,o,l]`` as a column ``(O, 1)``: per block a sum, added pairwise."""
    total = _Pairwise()
    for n, chunk in _chunks(g):
        total.add(delta[n, :, chunk].sum(axis=-1, keepdims=True))
    return total.total()


# --------------------------------------------------------------------------
# The three results.


@dataclass(frozen=True)
class Bilinear:
    """One result as a sum of products: ``product(left, right)`` on real operands (a
    float64 sum of ``terms`` products, each through at most ``depth`` roundings), the
    operands' parts and magnitudes, whether the right one is conjugated, and exact terms
    added to each sum (the forward's bias) with their magnitudes."""

    product: Callable[[Float, Float], Float]
    left: Parts
    right: Parts
    magnitudes: tuple[Float, Float]
    conjugate: bool
    terms: int
    depth: int
    extra: Parts | None = None
    abs_extra: Float | None = None
    # The same sums for some batch items only (None: not to be cut), and the items.
    items: Callable[[slice], Bilinear] | None = None
    batch: int = 1

    def sums(self, left: Parts, right: Parts) -> list[Float]:
        return _combined(self.product, left, right, self.conjugate)

    @property
    def count(self) -> int:
        """Real products in one part's sum (twice the terms for complex operands)."""
        return self.terms * (1 if self.left[1] is None else 2)


def estimate_of(sum_: Bilinear, values: bool = True) -> Estimate:
    """The float64 sums (none unless ``values``) and the sums of magnitudes."""
    sums = sum_.sums(sum_.left, sum_.right) if values else []
    magnitude = sum_.product(*sum_.magnitudes)
    if sum_.extra is not None and sum_.abs_extra is not None:
        for part, extra in zip(sums, sum_.extra, strict=False):
            if extra is not None:
                part += extra
        magnitude += sum_.abs_extra
    return Estimate(sums, magnitude, sum_.depth + 2)


def _cut(a: Parts, exponent: int, bits: int) -> tuple[Parts, Parts, Parts]:
    """``a`` as ``top + next + rest`` (each exact): its bits in ``[2**(e-b), 2**e)``, in
    ``[2**(e-2b), 2**(e-b))`` and below, ``e`` the ``exponent``, ``b`` the ``bits``."""

    # Powers of two (in range: see usable()), so every scaling is exact.
    up, down = 2.0 ** (bits - exponent), 2.0 ** (exponent - bits)

    def cut(v: Float | None) -> tuple[Any, Any, Any]:
        if v is None:
            return None, None, None
        top = np.trunc(v * up) * down
        rest = v - top
        second = np.trunc(rest * (up * 2.0**bits)) * (down * 2.0**-bits)
        return top, second, rest - second

    (top_r, second_r, rest_r), (top_i, second_i, rest_i) = cut(a[0]), cut(a[1])
    return (top_r, top_i), (second_r, second_i), (rest_r, rest_i)


def _top_exponent(a: Parts) -> int:
    """``e`` with every part's magnitudes below ``2**e``."""
    return max(int(ozaki.top_exponent(p, None).max()) for p in a if p is not None)


def _add(a: Parts, b: Parts) -> Parts:
    return a[0] + b[0], None if a[1] is None or b[1] is None else a[1] + b[1]


def fine(sum_: Bilinear, factor: float) -> tuple[list[Float], npt.NDArray[np.bool_]]:
    """Values rounded to float64 from sums split so that most of them is exact.

    With both operands cut under one power of two each (:func:`_cut`, ``b`` bits per
    slice), ``sum l r = T0 + T1 + R``: ``T0 = sum l0 r0`` and ``T1 = sum l0 r1 + l1 r0``
    are sums of integers (in units of ``2**(e_l + e_r - 2b)`` and ``2**(e_l + e_r -
    3b)``) below 2**53, exact in float64 whatever the order, and the rest ``R = sum l0
    r2 + l1 (r1 + r2) + l2 r``, whose ``3 n`` terms are each below ``2**(e_l + e_r -
    2b)``, is a float64 sum within ``gamma_d 3 n 2**(e_l + e_r - 2b)`` of its value: about
    ``2**-80`` of the largest terms, far below float64's own rounding. The pieces are
    added in double-double arithmetic, with the bound carried, and rounded
    (:func:`.ozaki.round_bounded`); the values it does not settle are open.
    """
    if sum_.items is not None and sum_.batch > 1:
        # Item by item (a few at a time): the pieces below take several whole copies.
        per_item = max(1, sum_.magnitudes[0][:1].size)
        step = max(1, 2**20 // per_item)
        found = [fine(sum_.items(slice(n, n + step)), factor)
                 for n in range(0, sum_.batch, step)]  # fmt: skip
        values = [np.concatenate(parts) for parts in zip(*(v for v, _ in found), strict=True)]
        return values, np.concatenate([open_ for _, open_ in found])
    left_exponent, right_exponent = _top_exponent(sum_.left), _top_exponent(sum_.right)
    bits = (53 - (2 * sum_.count - 1).bit_length()) // 2
    l0, l1, l2 = _cut(sum_.left, left_exponent, bits)
    r0, r1, r2 = _cut(sum_.right, right_exponent, bits)
    t0 = sum_.sums(l0, r0)
    t1 = [a + b for a, b in zip(sum_.sums(l0, r1), sum_.sums(l1, r0), strict=True)]
    rest = [a + b + c for a, b, c in zip(sum_.sums(l0, r2), sum_.sums(l1, _add(r1, r2)),
                                         sum_.sums(l2, sum_.right), strict=True)]  # fmt: skip
    largest_term = 2.0 ** (left_exponent + right_exponent - 2 * bits)
    reach = gamma(sum_.depth + 4) * 3 * sum_.count * largest_term
    extra = sum_.extra or (None, None)
    values, open_ = [], np.zeros(t0[0].shape, dtype=bool)
    for part, (a, b, c) in enumerate(zip(t0, t1, rest, strict=True)):
        hi, low1 = ozaki._two_sum(a, b)
        added = extra[part]
        if added is not None:
            hi, low2 = ozaki._two_sum(hi, np.broadcast_to(added, hi.shape))
        else:
            low2 = np.zeros_like(hi)
        tail = (low1 + low2) + c
        left_out = reach + 3 * _U * (np.abs(low1) + np.abs(low2) + np.abs(c))
        hi, lo = ozaki._two_sum(hi, tail)
        value, decided = ozaki.round_bounded(hi, lo, left_out * (1 + 2.0**-20), factor, "float64")
        values.append(value)
        open_ |= ~decided
    return values, open_


def output(
    x_pad: Parts, w: Parts, b: Parts | None, magnitudes: tuple[Float, Float, Float | None],
    g: Conv1dGeometry, memory: int,
) -> Bilinear:  # fmt: skip
    """The forward sums (``magnitudes``: ``|x_pad|``, ``|w|``, ``|b|``)."""
    abs_x, abs_w, abs_b = magnitudes

    def items(chosen: slice) -> Bilinear:
        part = replace(g, batch_size=len(range(g.batch_size)[chosen]))
        return replace(output(_items_of(x_pad, chosen), w, b, (abs_x[chosen], abs_w, abs_b),
                              part, memory), items=None)  # fmt: skip

    return Bilinear(
        lambda x, v: _correlate(x, v, g, memory), x_pad, w, (abs_x, abs_w), conjugate=False,
        terms=g.fan_in * g.kernel_size, depth=g.fan_in + g.kernel_size,
        extra=None if b is None else (b[0][None, :, None],
                                      None if b[1] is None else b[1][None, :, None]),
        abs_extra=None if abs_b is None else abs_b[None, :, None],
        items=items, batch=g.batch_size,
    )  # fmt: skip


def input_grad(
    delta: Parts, w: Parts, magnitudes: tuple[Float, Float], g: Conv1dGeometry, memory: int
) -> Bilinear:
    """The input gradient's sums (``conj(w)``; ``magnitudes``: ``|delta|``, ``|w|``)."""
    out_g = g.out_channels // g.groups

    def items(chosen: slice) -> Bilinear:
        part = replace(g, batch_size=len(range(g.batch_size)[chosen]))
        return replace(input_grad(_items_of(delta, chosen), w, (magnitudes[0][chosen],
                                  magnitudes[1]), part, memory), items=None)  # fmt: skip

    return Bilinear(
        lambda d, v: _spread(d, v, g, memory), delta, w, magnitudes, conjugate=True,
        terms=out_g * g.kernel_size, depth=out_g + g.kernel_size, items=items,
        batch=g.batch_size,
    )  # fmt: skip


def _items_of(a: Parts, chosen: slice) -> Parts:
    return a[0][chosen], None if a[1] is None else a[1][chosen]


def weight_grad(
    delta: Parts, x_pad: Parts, magnitudes: tuple[Float, Float], g: Conv1dGeometry
) -> tuple[Bilinear, Bilinear]:
    """The weight gradient's sums (``conj(x_pad)``), ``(O, C_g K)``, and the bias
    gradient's, ``(O, 1)`` (``magnitudes``: ``|delta|``, ``|x_pad|``)."""
    depth = CHUNK + _Pairwise.depth(len(_chunks(g)))
    terms = g.batch_size * g.out_length
    one = np.ones(())
    return (
        Bilinear(lambda d, x: _gradient(d, x, g), delta, x_pad, magnitudes, conjugate=True,
                 terms=terms, depth=depth),
        Bilinear(lambda d, c: _bias_gradient(d * c, g), delta, (one, None if delta[1] is None
                 else np.zeros(())), (magnitudes[0], one), conjugate=True, terms=terms,
                 depth=depth),
    )  # fmt: skip


# --------------------------------------------------------------------------
# All results of a case.


@dataclass
class _Result:
    """One result's rounded parts, error scale and unscaled parts (None when not asked)."""

    values: list[Float]
    scale: Float
    unscaled: list[Float] | None


def _settle(
    estimate: Estimate | None,
    factor: Factor,
    target: str,
    held: bool,
    route: _Routes,
) -> _Result:
    """Settle one result from its estimate (float64 values from ``route.fine``); exact
    (``route.exact``, ``route.exact_scale``) where there is none or it leaves too much
    open; the few open elements from ``route.at``."""
    keep: list[Float] | None = [] if held else None
    if estimate is None:
        values = route.exact(keep)
        return _Result(values, route.exact_scale(), keep)
    scale, open_scale = _by_rows(
        lambda rows: settle_scales(estimate.magnitude[rows], estimate.depth, factor),
        estimate.magnitude.shape,
    )
    if too_open(open_scale):
        scale, open_scale = route.exact_scale(), np.zeros_like(open_scale)
    if target == "float64":
        assert route.fine is not None  # it applies wherever there is an estimate
        values, open_ = route.fine(False)
        if held:
            keep, open_held = route.fine(True)
            open_ |= open_held
        # Every term zero: the sum is +0, which the pair's bound alone cannot tell.
        nothing = estimate.magnitude == 0
        open_ &= ~nothing
        for part in [*values, *(keep or [])]:
            part[nothing] = 0.0
    else:
        values, open_ = _by_rows(lambda rows: _values_at(estimate, rows, factor, target),
                                 estimate.magnitude.shape, len(estimate.sums))  # fmt: skip
        if held:
            keep, open_held = _by_rows(lambda rows: _values_at(estimate, rows, 1.0, target),
                                       estimate.magnitude.shape, len(estimate.sums))  # fmt: skip
            open_ |= open_held
    if too_open(open_):
        keep = [] if held else None
        values, open_ = route.exact(keep), np.zeros_like(open_)
    result = _Result(values, scale, keep)
    # Open values take their error scales too only where those are open.
    for where, scales in ((np.flatnonzero(open_scale), True),
                          (np.flatnonzero(open_ & ~open_scale), False)):  # fmt: skip
        if where.size:
            found = route.at(where, scales)
            for mine, theirs in [*zip(result.values, found.values, strict=True),
                                 *zip(result.unscaled or [], found.unscaled or [], strict=True),
                                 *([(result.scale, found.scale)] if scales else [])]:  # fmt: skip
                mine.reshape(-1)[where] = theirs
    return result


@dataclass(frozen=True)
class _Routes:
    """The other ways to one result: exact values (filling a list with the unscaled ones
    when given one), exact error scales, everything exact at flat positions, and float64
    values from mostly exact sums (:func:`fine`, without the factor when asked; None
    where it does not apply)."""

    exact: Callable[[list[Float] | None], list[Float]]
    exact_scale: Callable[[], Float]
    at: Callable[[npt.NDArray[np.int64], bool], _Result]
    fine: Callable[[bool], tuple[list[Float], npt.NDArray[np.bool_]]] | None


def _values_at(
    estimate: Estimate, rows: slice, factor: Factor, target: str
) -> tuple[list[Float], npt.NDArray[np.bool_]]:
    return settle_values([part[rows] for part in estimate.sums], estimate.magnitude[rows],
                         estimate.depth, factor, target)  # fmt: skip


def _by_rows(settle: Callable[[slice], Any], shape: tuple[int, ...], parts: int | None = None
             ) -> Any:  # fmt: skip
    """``settle`` on blocks of rows (about a million elements each: the temporaries stay
    small), put together: one array and the open ones, or ``parts`` arrays and the open."""
    step = max(1, 2**20 // max(1, int(np.prod(shape[1:], dtype=np.int64))))
    first: list[Float] = [np.empty(shape) for _ in range(parts or 1)]
    open_ = np.empty(shape, dtype=bool)
    for start in range(0, shape[0], step):
        rows = slice(start, start + step)
        settled, open_[rows] = settle(rows)
        for whole, block in zip(first, settled if parts else [settled], strict=True):
            whole[rows] = block
    return (first if parts else first[0]), open_


def _sums_at(sums: Any) -> _Result:
    """A :class:`points.Sums` as a :class:`_Result`."""
    return _Result(list(sums.values), sums.error_scale, sums.unscaled)


def expected_results(
    x: npt.NDArray[Any],
    w: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    delta: npt.NDArray[Any],
    geometry: Conv1dGeometry,
    scales: Conv1dScales,
    target: str | None = None,
    memory: int | None = None,
    step: Callable[[], None] | None = None,
    unscaled_out: dict[str, npt.NDArray[Any]] | None = None,
) -> dict[str, tuple[npt.NDArray[Any], Float]]:
    """The same results, bytes and arguments as :func:`.sliced.expected_results`, found
    from float64 sums and their error bound; exact only where the bound leaves them open.

    ``memory`` bounds the float64 sums' temporaries beyond the whole results (and the
    exact route's blocks where it is taken; default :data:`.sliced.DEFAULT_MEMORY`).
    """
    memory = sliced.DEFAULT_MEMORY if memory is None else memory
    dtype = target or np.dtype(x.dtype).name
    part = sliced._PART_TARGET[dtype]
    g = geometry
    held = unscaled_out is not None
    inputs = sliced.prepare(x, w, b, delta, g)
    source = points.ArraySource({
        "input": _finite_array(x), "weight": _finite_array(w),
        "bias": None if b is None else _finite_array(b), "grad_output": _finite_array(delta),
    })  # fmt: skip
    done = step or (lambda: None)
    results: dict[str, _Result] = {}
    with np.errstate(all="ignore"):
        factor = scales.output
        sum_ = output(inputs.x_pad, inputs.w, inputs.b, (inputs.abs_x_pad[0], inputs.abs_w[0],
                      None if inputs.abs_b is None else inputs.abs_b[0]), g, memory)  # fmt: skip
        fits = usable([(inputs.x_pad, inputs.w), (inputs.b, None)], (factor,), sum_.terms + 1)
        estimate = estimate_of(sum_, part != "float64") if fits else None
        done()
        results["output"] = _settle(estimate, factor, part, held, _Routes(
            lambda keep: sliced.forward(inputs.x_pad, inputs.w, inputs.b, g, factor, part,
                                        memory, keep),
            lambda: sliced.forward(inputs.abs_x_pad, inputs.abs_w, inputs.abs_b, g,
                                   abs(factor), sliced.ERROR_SCALE, memory)[0],
            lambda flat, scales: _sums_at(points.output_at(source, g, flat, factor, part, held,
                                                           scales)),
            (lambda unit: fine(sum_, 1.0 if unit else factor)) if fits else None,
        ))  # fmt: skip
        done()
        estimate = None  # (its arrays are as large as the result)
        factor = scales.grad_input
        sum_ = input_grad(inputs.delta, inputs.w, (inputs.abs_delta[0], inputs.abs_w[0]), g,
                          memory)  # fmt: skip
        fits = usable([(inputs.delta, inputs.w)], (factor,), sum_.terms)
        estimate = estimate_of(sum_, part != "float64") if fits else None
        done()
        results["grad_input"] = _settle(estimate, factor, part, held, _Routes(
            lambda keep: sliced.input_grad(inputs.delta, inputs.w, g, factor, part, memory, keep),
            lambda: sliced.input_grad(inputs.abs_delta, inputs.abs_w, g, abs(factor),
                                      sliced.ERROR_SCALE, memory)[0],
            lambda flat, scales: _sums_at(points.input_grad_at(source, g, flat, factor, part,
                                                               held, scales)),
            (lambda unit: fine(sum_, 1.0 if unit else factor)) if fits else None,
        ))  # fmt: skip
        done()
        estimate = None
        results.update(_gradients(inputs, source, g, scales, part, held, b is not None, memory))
        done()
        done()
    unscaled = None
    if held:
        unscaled = {name: result.unscaled or [] for name, result in results.items()}
    rounded = {name: (result.values, result.scale) for name, result in results.items()}
    return sliced.finish(rounded, unscaled, x, w, b, delta, g, scales, dtype, unscaled_out)


def _finite_array(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``a`` with inf and NaN parts set to zero (the exact sums' convention)."""
    if np.all(np.isfinite(a)):
        return a
    if np.iscomplexobj(a):
        result = np.array(a)
        result.real = np.where(np.isfinite(a.real), a.real, 0)
        result.imag = np.where(np.isfinite(a.imag), a.imag, 0)
        return result
    return np.where(np.isfinite(a), a, 0)


def _gradients(
    inputs: sliced.Prepared,
    source: points.ArraySource,
    g: Conv1dGeometry,
    scales: Conv1dScales,
    target: str,
    held: bool,
    bias: bool,
    memory: int,
) -> dict[str, _Result]:
    """``grad_weight`` and (with a bias) ``grad_bias``: settled as one ``(O, C_g K + 1)``
    array, the bias gradient in the last column with its own factor."""
    columns = g.fan_in * g.kernel_size
    factor = np.full(columns + 1, scales.grad_weight)
    factor[-1] = scales.grad_bias
    weights, biases = weight_grad(inputs.delta, inputs.x_pad,
                                  (inputs.abs_delta[0], inputs.abs_x_pad[0]), g)  # fmt: skip
    pairs = [(inputs.delta, inputs.x_pad), (inputs.delta, None)]
    fits = usable(pairs, (scales.grad_weight, scales.grad_bias), weights.terms)
    estimate = None
    if fits:
        parts = [estimate_of(sum_, target != "float64") for sum_ in (weights, biases)]
        estimate = Estimate(
            [np.hstack(pair) for pair in zip(parts[0].sums, parts[1].sums, strict=True)],
            np.hstack([parts[0].magnitude, parts[1].magnitude]),
            max(parts[0].depth, parts[1].depth),
        )

    def fine_both(unit: bool) -> tuple[list[Float], npt.NDArray[np.bool_]]:
        weight_values, weight_open = fine(weights, 1.0 if unit else scales.grad_weight)
        bias_values, bias_open = fine(biases, 1.0 if unit else scales.grad_bias)
        values = [np.hstack(pair) for pair in zip(weight_values, bias_values, strict=True)]
        return values, np.hstack([weight_open, bias_open])

    def exact(keep: list[Float] | None) -> list[Float]:
        weights, biases = sliced.weight_grad(inputs.delta, inputs.x_pad, g, scales.grad_weight,
                                             target, scales.grad_bias, memory, keep)  # fmt: skip
        assert biases is not None
        if keep is not None:
            n_parts = len(weights)
            keep[:] = [np.hstack([a.reshape(g.out_channels, -1), c[:, None]])
                       for a, c in zip(keep[:n_parts], keep[n_parts:], strict=True)]  # fmt: skip
        return [np.hstack([a.reshape(g.out_channels, -1), c[:, None]])
                for a, c in zip(weights, biases, strict=True)]  # fmt: skip

    def exact_scale() -> Float:
        weights, biases = sliced.weight_grad(
            inputs.abs_delta, inputs.abs_x_pad, g, abs(scales.grad_weight), sliced.ERROR_SCALE,
            abs(scales.grad_bias), memory,
        )  # fmt: skip
        assert biases is not None
        return np.hstack([weights[0].reshape(g.out_channels, -1), biases[0][:, None]])

    def at(flat: npt.NDArray[np.int64], with_scales: bool) -> _Result:
        rows, column = np.divmod(flat, columns + 1)
        rows, chosen = np.unique(rows), np.unique(column[column < columns])
        if chosen.size == 0:
            chosen = np.zeros(1, dtype=np.int64)
        grid = points.weight_grad_grid(source, g, rows, chosen, scales.grad_weight,
                                       scales.grad_bias, target, held, with_scales)  # fmt: skip
        assert grid.bias is not None
        row = np.searchsorted(rows, flat // (columns + 1))
        on_bias = flat % (columns + 1) == columns
        weight = row * chosen.size + np.searchsorted(chosen, np.where(on_bias, chosen[0], column))

        def take(weights: Float, biases: Float) -> Float:
            picked: Float = np.where(on_bias, biases[row], weights[weight])
            return picked

        unscaled = None
        if grid.weight.unscaled is not None and grid.bias.unscaled is not None:
            unscaled = [take(a, c) for a, c in zip(grid.weight.unscaled, grid.bias.unscaled,
                                                   strict=True)]  # fmt: skip
        return _Result(
            [take(a, c) for a, c in zip(grid.weight.values, grid.bias.values, strict=True)],
            take(grid.weight.error_scale, grid.bias.error_scale),
            unscaled,
        )

    result = _settle(estimate, factor[None, :], target, held,
                     _Routes(exact, exact_scale, at, fine_both if fits else None))  # fmt: skip
    split = {"grad_weight": slice(0, columns), "grad_bias": slice(columns, columns + 1)}
    out: dict[str, _Result] = {}
    for name, where in split.items():
        if name == "grad_bias" and not bias:
            continue
        shape = g.weight_shape if name == "grad_weight" else (g.out_channels,)
        out[name] = _Result(
            [v[:, where].reshape(shape) for v in result.values],
            result.scale[:, where].reshape(shape),
            None
            if result.unscaled is None
            else [v[:, where].reshape(shape) for v in result.unscaled],
        )
    return out
