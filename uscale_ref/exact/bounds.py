"""Error scales: exact sums of magnitudes, rounded up to a few significant bits.

An error scale only has to be an upper bound of ``|s| (sum |t| + |b|)`` with a
few significant bits, not its correctly rounded value. So it is defined as
that exact sum **rounded up to** :data:`ERROR_SCALE_BITS` **significant
bits**, which does not depend on how it is computed, and computed cheaply:

1. cut every magnitude once, at the top slice, both down (``trunc``) and up
   (``ceil``): ``D`` and ``U`` with ``D 2^(e-b) <= |a| <= U 2^(e-b)``;
2. two slice products give exact integers ``sum D D'`` and ``sum U U'``, a
   lower and an upper bound of the sum (all terms are non-negative);
3. where both bounds round up to the same number, that is the error scale:
   the exact sum lies between them and rounding up is monotone;
4. elsewhere (a few in a thousand: a grid point between the bounds) the sum
   is computed exactly, with every slice, and rounded up from it.

Compared with the exact sums of every slice pair this takes two products
instead of some nine, and the result is the same number on every machine.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from . import ozaki

__all__ = ["ERROR_SCALE_BITS", "round_up", "settle", "top_slices"]

Float = npt.NDArray[np.float64]

#: Significant bits an error scale keeps (it is rounded up to them).
ERROR_SCALE_BITS = 8
# The bounds reach float64 through a few roundings; widen them by more than those cost.
_WIDEN = 2.0**-50


def round_up(x: npt.ArrayLike, bits: int = ERROR_SCALE_BITS) -> Float:
    """Non-negative ``x`` rounded up to ``bits`` significant bits (0 stays 0, inf stays inf).

    >>> round_up([0.0, 1.0, 1.001, 3.0, 255.5]).tolist()
    [0.0, 1.0, 1.0078125, 3.0, 256.0]
    """
    values = np.asarray(x, dtype=np.float64)
    fraction, exponent = np.frexp(values)
    with np.errstate(invalid="ignore"):
        rounded = np.ldexp(np.ceil(np.ldexp(fraction, bits)), exponent - bits)
    result: Float = np.where(np.isfinite(values), rounded, values)
    return result


def top_slices(a: Float, exponent: Any, bits: int) -> tuple[Float, Float]:
    """``trunc`` and ``ceil`` of non-negative ``a`` scaled to ``bits`` bits below ``2**exponent``.

    ``D 2^(e-b) <= a <= U 2^(e-b)``, ``U - D`` 0 or 1, both integers at most ``2**bits``.
    """
    scaled = np.ldexp(a, (bits - np.asarray(exponent)).astype(np.int32))
    return np.trunc(scaled), np.ceil(scaled)


def settle(lower: Float, upper: Float, bits: int = ERROR_SCALE_BITS) -> tuple[Float, Any]:
    """The rounded-up value where ``[lower, upper]`` decides it, and where it does not.

    ``lower`` and ``upper`` are float64 values of bounds a few roundings away from
    their exact values; both are widened by :data:`_WIDEN` relative first.
    """
    low = round_up(lower * (1 - _WIDEN), bits)
    high = round_up(upper * (1 + _WIDEN), bits)
    return high, low != high


def exact_round_up(
    limbs: ozaki.Limbs, frame: Any, factor: float, bits: int = ERROR_SCALE_BITS
) -> Float:
    """The exact sums in ``limbs`` times ``factor`` (non-negative), rounded up to ``bits``
    significant bits. Where the nearest float64 lies on the grid itself, the exact value
    decides whether it is above (then the next grid point) or not."""
    nearest = ozaki.round_scaled(limbs, frame, factor, "float64")
    result = round_up(nearest, bits)
    on_grid = np.flatnonzero((result == nearest) & (nearest > 0) & np.isfinite(nearest))
    if on_grid.size:
        parts = limbs.normalized()
        frames = np.broadcast_to(frame, limbs.shape)
        scale = Fraction(factor)
        flat_result = result.reshape(-1)
        for index in on_grid:
            at = tuple(int(i) for i in np.unravel_index(index, limbs.shape))
            exact = ozaki.exact_values(parts, frames, limbs.bits, at) * scale
            if exact > Fraction(float(flat_result[index])):
                grid = float(flat_result[index])
                flat_result[index] = float(round_up(np.nextafter(grid, np.inf), bits))
    return result
