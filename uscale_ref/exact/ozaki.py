"""Exact matrix products through any BLAS: operands cut into few-bit slices.

This is the error-free scheme of Ozaki, Ogita, Oishi and Rump (2012,
"Error-free transformations of matrix multiplication by using fast routines
of matrix multiplication and its applications", Numerical Algorithms 59),
with the slice products kept as integers.

Why the products are exact
--------------------------
Give every row :math:`m` of :math:`A` a power of two :math:`2^{e_m}` above
its largest magnitude, and every column :math:`n` of :math:`B` one,
:math:`2^{f_n}`. Cut each entry into ``b``-bit slices below that power:

.. math::

    A_{mk} = \\sum_p 2^{e_m - b (p + 1)} D^{(p)}_{mk}, \\qquad
    B_{kn} = \\sum_q 2^{f_n - b (q + 1)} E^{(q)}_{kn},

where each slice is an integer with :math:`|D| < 2^b` (``trunc`` of the
rest scaled by a power of two; scaling and subtracting the slice are exact).
A finite float64 has a finite number of bits, so the slices end. A slice
product :math:`\\sum_k D^{(p)}_{mk} E^{(q)}_{kn}` over an inner length
:math:`n_c` is an integer below :math:`n_c 2^{2b}`; when
:math:`2 b + \\lceil \\log_2 n_c \\rceil \\le 53` every partial sum a
classical matrix product can form, in any order, with or without fused
multiply-adds or threads, is an integer of at most 53 bits, so float64
holds it exactly. Every BLAS then returns the same exact integers: the
bytes do not depend on the library, the CPU or the thread count. (Not so
for Strassen-like or 3M complex products, or for GPUs' emulated float64.)

The slice products are added as 64-bit integers, one "limb" per power
:math:`2^{e_m + f_n - b j}` (:class:`Limbs`), with carries propagated before
they can overflow. The result is the exact sum, as an integer per element
times a power of two; :func:`round_scaled` multiplies it by a float64
factor and rounds once, correctly, to the target format. Inner dimensions
longer than :math:`2^{53 - 2b}` are cut into chunks, each exact, added as
integers.

The entries must be finite: inf and NaN have no bits to slice (the callers
route them separately).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]

_MANTISSA = 53
# Additions of values below 2^53 an int64 limb takes before carries must move.
_ADDS_BEFORE_CARRY = 256


@dataclass(frozen=True)
class Target:
    """A binary format to round to: precision (with the leading bit), exponent range."""

    name: str
    precision: int
    min_exponent: int  # of the smallest normal number
    largest: float


TARGETS = {
    t.name: t
    for t in (
        Target("float64", 53, -1022, float(np.finfo(np.float64).max)),
        Target("float32", 24, -126, float(np.finfo(np.float32).max)),
        Target("float16", 11, -14, 65504.0),
        Target("bfloat16", 8, -126, (2 - 2**-7) * 2.0**127),
    )
}


def slice_bits(inner: int) -> int:
    """The widest slice ``b`` with ``2 b + ceil(log2(inner)) <= 53`` (at most 26)."""
    return min(26, (_MANTISSA - max(0, inner - 1).bit_length()) // 2)


def chunk_length(bits: int) -> int:
    """The longest inner dimension whose ``bits``-bit slice products stay exact."""
    return int(2 ** (_MANTISSA - 2 * bits))


def top_exponent(a: Float, axis: int | tuple[int, ...] | None) -> Int:
    """``e`` with ``|a| < 2**e`` along ``axis`` (kept as a length-1 axis); 0 for zeros."""
    largest = np.max(np.abs(a), axis=axis, keepdims=True) if a.size else np.zeros((1,) * a.ndim)
    exponent: Int = np.frexp(largest)[1].astype(np.int64)
    return exponent


def split(a: Float, exponent: Int, bits: int) -> list[Float]:
    """The ``bits``-bit integer slices of ``a`` below ``2**exponent`` (broadcast), top first.

    ``a == sum(ldexp(slices[p], exponent - bits * (p + 1)))`` exactly. Each
    slice is the integer part of the rest scaled up by ``2**bits``; scaling
    up by a power of two, truncating and taking the integer part off are all
    exact. Stops when nothing is left: no slices for an all-zero array.
    """
    slices: list[Float] = []
    if np.any(exponent > bits):
        # Scaling such rows down in one step could push their small entries
        # below float64's normal range and lose bits: scale each slice alone.
        rest = np.array(a, dtype=np.float64)
        while rest.any():
            shift = (bits * (len(slices) + 1) - exponent).astype(np.int32)
            digit = np.trunc(np.ldexp(rest, shift))
            rest -= np.ldexp(digit, -shift)
            slices.append(digit)
        return slices
    scaled = a * np.ldexp(1.0, (bits - exponent).astype(np.int32))
    step = float(2**bits)
    while scaled.any():
        digit = np.trunc(scaled)
        slices.append(digit)
        scaled -= digit
        scaled *= step
    return slices


class Limbs:
    """An exact integer sum per element, ``sum_j limb[j] * 2**(frame - bits * j)``.

    Slice ``p`` of the left operand times slice ``q`` of the right one lands
    in limb ``p + q + 2``; limbs 0 and 1 take the carries.
    """

    def __init__(self, shape: tuple[int, ...], bits: int) -> None:
        self.shape = shape
        self.bits = bits
        self.limbs: list[Int] = []
        self._adds = 0

    def limb(self, j: int) -> Int:
        while len(self.limbs) <= j:
            self.limbs.append(np.zeros(self.shape, dtype=np.int64))
        return self.limbs[j]

    def add(self, j: int, product: Float, index: tuple[slice, ...] | None = None) -> None:
        """Add an exact integer-valued float64 ``product`` (below 2**53) into limb ``j``."""
        target = self.limb(j)
        values = product.astype(np.int64)
        if index is None:
            target += values
        else:
            target[index] += values
        self._adds += 1
        if self._adds >= _ADDS_BEFORE_CARRY:
            self.carry()

    def carry(self) -> None:
        """Bring every limb but the first into ``[0, 2**bits)``; the value is unchanged."""
        mask = np.int64(2**self.bits - 1)
        for j in range(len(self.limbs) - 1, 0, -1):
            carry = self.limbs[j] >> self.bits
            self.limbs[j] &= mask
            self.limbs[j - 1] += carry
        self._adds = 0

    def normalized(self) -> list[Int]:
        """The limbs after carrying, without all-zero trailing limbs."""
        self.carry()
        limbs = list(self.limbs)
        while limbs and not limbs[-1].any():
            limbs.pop()
        return limbs


def accumulate(
    limbs: Limbs,
    left: Sequence[Float],
    right: Sequence[Float],
    index: tuple[slice, ...] | None = None,
    right_columns: slice | npt.NDArray[np.intp] | None = None,
    shape: tuple[int, ...] | None = None,
) -> None:
    """Add the exact product of two sliced operands (``left @ right``) into ``limbs``.

    ``left`` holds the slices of an ``(M, n)`` matrix and ``right`` those of
    an ``(n, N)`` one, both cut with ``limbs.bits``. Only the inner indices
    where both slices have a non-zero are multiplied (deep slices are
    sparse: they hold the small entries' last bits), in chunks short enough
    to stay exact. ``right_columns`` picks columns of ``right``; the product
    is reshaped to ``shape`` and placed at ``index`` inside the limbs.
    """
    chunk = chunk_length(limbs.bits)
    right_used = [r if right_columns is None else r[:, right_columns] for r in right]
    right_masks = [r.any(axis=1) for r in right_used]
    for p, a in enumerate(left):
        a_mask = a.any(axis=0)
        for q, b in enumerate(right_used):
            inner = np.flatnonzero(a_mask & right_masks[q])
            if inner.size == 0:
                continue
            whole = inner.size == a.shape[1]
            total: Float | None = None
            for start in range(0, inner.size, chunk):
                if whole and inner.size <= chunk:
                    product = a @ b
                elif whole:
                    part = slice(start, start + chunk)
                    product = a[:, part] @ b[part, :]
                else:
                    picked = inner[start : start + chunk]
                    product = a[:, picked] @ b[picked, :]
                if total is not None:
                    limbs.add(p + q + 2, total if shape is None else total.reshape(shape), index)
                total = product
            assert total is not None
            limbs.add(p + q + 2, total if shape is None else total.reshape(shape), index)


# --------------------------------------------------------------------------
# Rounding the exact sums.


def _two_sum(a: Float, b: Float) -> tuple[Float, Float]:
    s = a + b
    virtual = s - a
    return s, (a - (s - virtual)) + (b - virtual)


def _two_prod(a: Float, b: Float | np.float64) -> tuple[Float, Float]:
    p = a * b
    t = 134217729.0 * a
    a_hi = t - (t - a)
    a_lo = a - a_hi
    u = 134217729.0 * b
    b_hi = u - (u - b)
    b_lo = b - b_hi
    return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _gaps(value: Float, target: Target) -> tuple[Float, Float]:
    """The distances from ``value`` (in ``target``) to its neighbours below and above."""
    if target.name == "float64":  # the neighbours themselves (their differences are exact)
        return value - np.nextafter(value, -np.inf), np.nextafter(value, np.inf) - value
    magnitude = np.abs(value)
    # Zero's neighbours are the smallest subnormals: its binade is the lowest one.
    exponent = np.where(magnitude == 0, target.min_exponent, np.frexp(magnitude)[1] - 1)
    binade = np.maximum(exponent, target.min_exponent)
    quantum = np.ldexp(1.0, (binade - (target.precision - 1)).astype(np.int32))
    on_power = (magnitude == np.ldexp(1.0, exponent.astype(np.int32))) & (
        exponent > target.min_exponent
    )
    toward_zero = np.where(on_power, quantum / 2, quantum)
    below = np.where(value > 0, toward_zero, quantum)
    above = np.where(value < 0, toward_zero, quantum)
    return below, above


def _round_pair(hi: Float, lo: Float, target: Target) -> Float:
    """``hi + lo`` (a normalised pair) rounded correctly to ``target``, as float64."""
    if target.name == "float64":
        same: Float = hi.copy()
        return same
    if target.name in ("float32", "float16"):
        rounded = hi.astype(target.name).astype(np.float64)
    else:
        from ..formats import round_to

        rounded = round_to(hi, target.name)
    # hi may sit exactly half-way between two neighbours; lo then decides.
    below, above = _gaps(rounded, target)
    halfway_up = (hi - rounded) == above / 2
    halfway_down = (rounded - hi) == below / 2
    result: Float = np.where(
        halfway_up & (lo > 0),
        rounded + above,
        np.where(halfway_down & (lo < 0), rounded - below, rounded),
    )
    return np.where(np.abs(result) > target.largest, np.copysign(np.inf, result), result)


def round_nearest(values: Float, target: str) -> Float:
    """Float64 ``values`` rounded to nearest (ties to even) in ``target``, as float64;
    beyond its largest finite number, inf."""
    if target in ("float32", "float16"):
        rounded: Float = values.astype(target).astype(np.float64)  # IEEE: correctly rounded
        return rounded
    return _round_pair(values, np.zeros_like(values), TARGETS[target])


def round_fraction(value: Fraction, target: Target, negative_zero: bool = False) -> float:
    """An exact rational rounded to nearest (ties to even) in ``target``, as a float."""
    if value == 0:
        return -0.0 if negative_zero else 0.0
    sign = -1.0 if value < 0 else 1.0
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1
    quantum = Fraction(2) ** (max(exponent, target.min_exponent) - (target.precision - 1))
    rounded = round(magnitude / quantum) * quantum
    if rounded > target.largest:
        return sign * float("inf")
    return sign * float(rounded)


def exact_values(limbs: Sequence[Int], frame: Int, bits: int, index: tuple[int, ...]) -> Fraction:
    """The exact sum at one element, as a fraction."""
    total = 0
    for limb in limbs:
        total = (total << bits) + int(limb[index])
    shift = int(frame[index]) - bits * (len(limbs) - 1)
    return Fraction(total) * (Fraction(2) ** shift)


def round_bounded(
    hi: Float, lo: Float, left_out: Float, factor: float, target: str, frame: Any = 0
) -> tuple[Float, npt.NDArray[np.bool_]]:
    """``factor * 2**frame * v`` rounded to nearest in ``target``, for a ``v`` known to lie
    within ``left_out`` of ``hi + lo`` (a normalised pair); and where that decides it.

    The factor is applied with error-free products; the result is rounded from the pair,
    and kept where the whole interval rounds the same way (not where it reaches within
    about ``2**-30`` of half a gap from a boundary, leaves float64's range or overflows).
    """
    spec = TARGETS[target]
    frame = np.broadcast_to(frame, np.shape(hi))
    p, e = _two_prod(hi, np.float64(factor))  # the factor split once, not per element
    q, q_dropped = _two_prod(lo, np.float64(factor))
    t, t_dropped = _two_sum(e, q)
    hi, lo = _two_sum(p, t)
    bound = (left_out * abs(factor) + np.abs(q_dropped) + np.abs(t_dropped)) * (1 + 2**-40)
    scale = frame.astype(np.int32)
    exponent = np.frexp(hi)[1] + frame
    in_range = (hi == 0) | ((exponent > -900) & (exponent < 1000))
    hi, lo, bound = np.ldexp(hi, scale), np.ldexp(lo, scale), np.ldexp(bound, scale)
    result = _round_pair(hi, lo, spec)
    below, above = _gaps(result, spec)
    offset = (hi - result) + lo
    margin = 1 - 2**-30
    decided = (bound == 0) | (
        (offset + bound < above / 2 * margin) & (offset - bound > -below / 2 * margin)
    )
    decided &= in_range & np.isfinite(result) & (np.abs(result) < spec.largest)
    return result, decided


def round_scaled(limbs: Limbs, frame: Int, factor: float, target: str) -> Float:
    """``factor`` times the exact sums in ``limbs``, rounded once to ``target`` (float64 array).

    The sum is read into a double-double pair with a strict bound on what
    the pair leaves out (zero when nothing is left out, the usual case), the
    factor applied with error-free products, and the pair rounded. Where the
    bound does not decide the rounding (a value within about 2**-100 of a
    rounding boundary), where the numbers leave float64's range, or where
    the result overflows, the element is rounded from the exact rational
    value instead. ``frame`` broadcasts to the limbs' shape.
    """
    spec = TARGETS[target]
    parts = limbs.normalized()
    frame = np.broadcast_to(frame, limbs.shape)
    if not parts:
        return np.zeros(limbs.shape)
    bits = limbs.bits
    with np.errstate(all="ignore"):
        hi = parts[0].astype(np.float64)
        lo = np.zeros(limbs.shape)
        left_out = np.zeros(limbs.shape)
        for j, limb in enumerate(parts[1:], start=1):
            term = np.ldexp(limb.astype(np.float64), -bits * j)
            s, e = _two_sum(hi, term)
            e2, dropped = _two_sum(e, lo)
            hi, lo = _two_sum(s, e2)
            left_out += np.abs(dropped)
        result, decided = round_bounded(hi, lo, left_out, factor, target, frame)
        decided &= bits * len(parts) < 600
    for index in zip(*np.nonzero(~decided), strict=True):
        exact = exact_values(parts, frame, bits, index) * Fraction(factor)
        result[index] = round_fraction(exact, spec)
    return result
