"""Simulated low-precision formats: round float32 (or float64) values to a format, keep the dtype.

Like the ``formats`` module of unit scaling, each function takes an array
and returns one of the same dtype whose values are representable in the
target format, so that a low-precision kernel can be simulated in float32.

====================  ========  ========  ===========  ==============  ===========
format                exponent  mantissa  largest      smallest        overflow
                      bits      bits                   normal
====================  ========  ========  ===========  ==============  ===========
``tf32``              8         10        ~3.4e38      2**-126         inf
``bfloat16``          8         7         ~3.39e38     2**-126         inf
``float16``           5         10        65504        2**-14          inf
``float8_e5m2``       5         2         57344        2**-14          inf
``float8_e4m3fn``     4         3         448          2**-6           NaN
====================  ========  ========  ===========  ==============  ===========

Rounding is to nearest, ties to even, with gradual underflow (subnormals:
the spacing stays that of the smallest binade, down to zero; the sign of a
zero is kept). A value whose rounding exceeds the largest finite value
overflows: to ``±inf``, except in ``float8_e4m3fn``, which has no infinity
and gives NaN (the "fn" of its name: finite and NaN only, as in ml_dtypes
and the OCP 8-bit specification). inf becomes NaN there too; NaN stays NaN.
``tf32`` also offers ``toward_zero`` rounding (truncation of the mantissa),
which some hardware uses; both are faithful roundings.

These work on NumPy arrays (the arithmetic needs ``frexp``, which the Array
API does not have).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["FORMATS", "Format", "round_to", "spacing"]


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: bits, range, and what overflow gives."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    largest: float
    overflow_is_nan: bool = False

    @property
    def smallest_normal(self) -> float:
        return float(2.0 ** (2 - 2 ** (self.exponent_bits - 1)))

    @property
    def smallest_subnormal(self) -> float:
        return self.smallest_normal * 2.0**-self.mantissa_bits

    @property
    def unit_roundoff(self) -> float:
        """Half the spacing of the numbers in [1, 2): ``2 ** -(mantissa_bits + 1)``."""
        return 2.0 ** -(self.mantissa_bits + 1)


FORMATS = {
    f.name: f
    for f in (
        Format("tf32", 8, 10, (2 - 2**-10) * 2.0**127),
        Format("bfloat16", 8, 7, (2 - 2**-7) * 2.0**127),
        Format("float16", 5, 10, 65504.0),
        Format("float8_e5m2", 5, 2, 57344.0),
        Format("float8_e4m3fn", 4, 3, 448.0, overflow_is_nan=True),
    )
}


#: The NumPy dtype that holds each dtype NumPy lacks: float32 holds bfloat16 values, and
#: complex64 holds complex32 ones (pairs of float16 values).
STORAGE = {"bfloat16": "float32", "complex32": "complex64"}


def spacing(x: npt.ArrayLike, format: str) -> npt.NDArray[np.float64]:
    """The gap between the numbers of ``format`` around each finite ``|x|`` (float64).

    For ``x`` between two representable numbers (or on one, away from a
    power of two) this is their distance; below the smallest normal it is
    the subnormal spacing.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    spec = FORMATS[format]
    _, exponent = np.frexp(np.asarray(x, dtype=np.float64))
    smallest_exponent = int(np.log2(spec.smallest_normal))
    result: npt.NDArray[np.float64] = np.ldexp(
        1.0, np.maximum(exponent - 1, smallest_exponent) - spec.mantissa_bits
    )
    return result


def round_to(
    x: npt.ArrayLike,
    format: str,
    rounding: Literal["nearest", "toward_zero"] = "nearest",
) -> npt.NDArray[Any]:
    """``x`` rounded to ``format``, in ``x``'s own (float32 or float64) dtype.

    Parameters
    ----------
    x : array_like of float32 or float64
    format : str
        One of :data:`FORMATS`: ``"tf32"``, ``"bfloat16"``, ``"float16"``,
        ``"float8_e5m2"``, ``"float8_e4m3fn"``.
    rounding : ``"nearest"`` (ties to even, the default) or ``"toward_zero"``

    Notes
    -----
    With :math:`e = \\lfloor \\log_2 |x| \\rfloor` (at least the smallest
    normal exponent) and :math:`m` mantissa bits, the representable numbers
    near :math:`x` are the multiples of :math:`q = 2^{e - m}`, so the result
    is :math:`q \\cdot \\operatorname{round}(x / q)`. Both steps are exact in
    float64 for float32 input: :math:`q` is a power of two.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1.0 + 2**-8, 464.0, 465.0, 1e-3], dtype=np.float32)
    >>> round_to(x, "float8_e4m3fn").tolist()  # a tie to even, one overflow, one subnormal
    [1.0, 448.0, nan, 0.001953125]
    >>> round_to(np.array([70000.0]), "float16", rounding="toward_zero").tolist()
    [65504.0]
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    if rounding not in ("nearest", "toward_zero"):
        raise ValueError(f"rounding must be 'nearest' or 'toward_zero', got {rounding!r}")
    spec = FORMATS[format]
    array = np.asarray(x)
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {array.dtype}")
    with np.errstate(all="ignore"):  # a caller's np.seterr(all="raise") is not ours to obey
        return _round(array, spec, rounding)


def _round(
    array: npt.NDArray[Any], spec: Format, rounding: Literal["nearest", "toward_zero"]
) -> npt.NDArray[Any]:
    format = spec.name
    wide = array.astype(np.float64)
    finite = np.isfinite(wide)
    safe = np.where(finite, wide, 0.0)
    quantum = spacing(safe, format)
    ratio = safe / quantum
    steps = np.round(ratio) if rounding == "nearest" else np.trunc(ratio)
    rounded = np.copysign(steps * quantum, safe)  # keeps the sign of zeros
    overflow = np.abs(rounded) > spec.largest
    # Toward zero never grows a magnitude: past the range it stops at the largest number.
    beyond = (
        spec.largest if rounding == "toward_zero" else np.nan if spec.overflow_is_nan else np.inf
    )
    rounded = np.where(overflow, np.copysign(beyond, safe), rounded)
    special = wide if not spec.overflow_is_nan else np.where(np.isnan(wide), wide, np.nan)
    result = np.where(finite, rounded, special)
    return result.astype(array.dtype)
