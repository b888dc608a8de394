"""Simulated low-precision formats: round float32 (or float64) values to a format, keep the dtype.

Like the ``formats`` module of unit scaling, each function takes an array
and returns one of the same dtype whose values are representable in the
target format, so that a low-precision kernel can be simulated in float32.

======================  ========  ========  ===========  ==============  ===========  ============
format                  exponent  mantissa  largest      smallest        overflow     ties
                        bits      bits                   normal
======================  ========  ========  ===========  ==============  ===========  ============
``tf32``                8         10        ~3.4e38      2**-126         inf          to even
``bfloat16``            8         7         ~3.39e38     2**-126         inf          to even
``float16``             5         10        65504        2**-14          inf          to even
``float8_e5m2``         5         2         57344        2**-14          inf          to even
``float8_e4m3fn``       4         3         448          2**-6           NaN          to even
``unit_scaling_e5m2``   5         2         57344        2**-15          saturates    toward zero
``unit_scaling_e4m3``   4         3         240          2**-7           saturates    toward zero
======================  ========  ========  ===========  ==============  ===========  ============

Rounding is to nearest with gradual underflow (subnormals: the spacing
stays that of the smallest binade, down to zero; the sign of a zero is
kept). A value whose rounding exceeds the largest finite value overflows:
to ``±inf``, except in ``float8_e4m3fn``, which has no infinity and gives
NaN (the "fn" of its name: finite and NaN only, as in ml_dtypes and the
OCP 8-bit specification). inf becomes NaN there too; NaN stays NaN.

The two ``float8_`` formats are the OCP ones (ml_dtypes, PyTorch, JAX).
The two ``unit_scaling_`` formats are those of unit_scaling's own
``formats.FPFormat(4, 3)`` and ``FPFormat(5, 2)`` with
``rounding="nearest"``: an exponent bias of ``2**(e - 1)`` (one more than
IEEE's, so the range sits a binade lower), every code a finite number (no
infinity, no NaN code), values beyond the largest **saturate** to it (inf
too), and ties round **toward zero** (their rounding adds half a unit less
one to the bits and cuts them).
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

__all__ = [
    "EIGHT_BIT",
    "FORMATS",
    "Format",
    "from_bits",
    "round_bits",
    "round_to",
    "spacing",
    "to_bits",
]


@dataclass(frozen=True)
class Format:
    """A binary floating-point format: bits, range, and what overflow gives."""

    name: str
    exponent_bits: int
    mantissa_bits: int
    largest: float
    overflow_is_nan: bool = False
    saturates: bool = False
    ties_toward_zero: bool = False
    bias: int | None = None  # the exponent bias; None: IEEE's, 2**(e - 1) - 1

    @property
    def exponent_bias(self) -> int:
        return 2 ** (self.exponent_bits - 1) - 1 if self.bias is None else self.bias

    @property
    def smallest_normal(self) -> float:
        return float(2.0 ** (1 - self.exponent_bias))

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
        Format("unit_scaling_e5m2", 5, 2, 57344.0, saturates=True, ties_toward_zero=True,
               bias=16),
        Format("unit_scaling_e4m3", 4, 3, 240.0, saturates=True, ties_toward_zero=True,
               bias=8),
    )
}  # fmt: skip
#: The 8-bit formats, whose values :func:`to_bits` and :func:`from_bits` code as bytes.
EIGHT_BIT = ("float8_e4m3fn", "float8_e5m2", "unit_scaling_e4m3", "unit_scaling_e5m2")


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
    smallest_exponent = 1 - spec.exponent_bias
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
    if rounding == "nearest" and spec.ties_toward_zero:
        steps = np.where(np.abs(ratio - np.trunc(ratio)) == 0.5, np.trunc(ratio), steps)
    rounded = np.copysign(steps * quantum, safe)  # keeps the sign of zeros
    overflow = np.abs(rounded) > spec.largest
    # Toward zero never grows a magnitude: past the range it stops at the largest number.
    beyond = (
        spec.largest if rounding == "toward_zero" or spec.saturates
        else np.nan if spec.overflow_is_nan else np.inf
    )  # fmt: skip
    rounded = np.where(overflow, np.copysign(beyond, safe), rounded)
    special = wide if not spec.overflow_is_nan else np.where(np.isnan(wide), wide, np.nan)
    if spec.saturates:  # inf is a value beyond the largest too
        special = np.where(np.isinf(wide), np.copysign(spec.largest, wide), special)
    result = np.where(finite, rounded, special)
    return result.astype(array.dtype)


def _codes(format: str) -> npt.NDArray[np.float64]:
    """The value of each of the 256 codes of an 8-bit format (NaN for its NaN codes)."""
    spec = FORMATS[format]
    e, m = spec.exponent_bits, spec.mantissa_bits
    code = np.arange(256)
    sign = np.where(code >> 7, -1.0, 1.0)
    exponent, mantissa = (code >> m) & (2**e - 1), code & (2**m - 1)
    normal = (1 + mantissa / 2**m) * np.ldexp(1.0, exponent - spec.exponent_bias)
    subnormal = mantissa * np.ldexp(1.0, 1 - spec.exponent_bias - m)
    values = sign * np.where(exponent == 0, subnormal, normal)
    top = exponent == 2**e - 1
    if format == "float8_e4m3fn":  # S.1111.111 is NaN; the rest of the top binade is finite
        values = np.where(top & (mantissa == 2**m - 1), np.nan, values)
    elif format == "float8_e5m2":  # IEEE: infinities and NaNs fill the top binade
        values = np.where(top, np.where(mantissa == 0, sign * np.inf, np.nan), values)
    table: npt.NDArray[np.float64] = np.asarray(values, dtype=np.float64)
    return table


def from_bits(codes: npt.ArrayLike, format: str) -> npt.NDArray[np.float32]:
    """The float32 values of the bytes ``codes`` (uint8) of an 8-bit ``format``.

    >>> from_bits(np.array([0x38, 0x7E, 0x7F, 0x01], dtype=np.uint8), "float8_e4m3fn").tolist()
    [1.0, 448.0, nan, 0.001953125]
    >>> from_bits(np.array([0x40, 0x7F], dtype=np.uint8), "unit_scaling_e4m3").tolist()
    [1.0, 240.0]
    """
    if format not in EIGHT_BIT:
        raise ValueError(f"format must be one of {list(EIGHT_BIT)}, got {format!r}")
    array = np.asarray(codes)
    if array.dtype != np.uint8:
        raise TypeError(f"codes must be uint8, got {array.dtype}")
    values: npt.NDArray[np.float32] = _codes(format).astype(np.float32)[array]
    return values


def to_bits(x: npt.ArrayLike, format: str) -> npt.NDArray[np.uint8]:
    """The bytes (uint8) of values ``x`` that lie in the 8-bit ``format`` (round them first,
    :func:`round_to`); a ``ValueError`` names a value that does not. NaN gets the format's
    NaN code (``0x7F``, sign kept; ``0x7E`` with sign in float8_e5m2), and a format without
    NaN refuses it.

    >>> to_bits(np.array([1.0, -0.0, 448.0, np.nan]), "float8_e4m3fn").tolist()
    [56, 128, 126, 127]
    """
    if format not in EIGHT_BIT:
        raise ValueError(f"format must be one of {list(EIGHT_BIT)}, got {format!r}")
    wide = np.asarray(x, dtype=np.float64)
    table = _codes(format)[:128]  # the non-negative codes, increasing with their value
    finite = np.flatnonzero(np.isfinite(table) | np.isinf(table))
    magnitude = np.abs(wide)
    place = np.clip(np.searchsorted(table[finite], magnitude), 0, finite.size - 1)
    code = finite[place]
    nan = np.isnan(wide)
    if np.any(nan):
        nan_codes = np.flatnonzero(np.isnan(table))
        if not nan_codes.size:
            raise ValueError(f"{format} has no NaN; a NaN cannot be coded in it")
        code = np.where(nan, 0x7E if format == "float8_e5m2" else nan_codes[-1], code)
    exact = nan | (table[code] == magnitude)
    if not np.all(exact):
        bad = wide[~exact].reshape(-1)[0]
        raise ValueError(f"{bad!r} is not a {format} number; round it first (round_to)")
    sign = np.signbit(wide).astype(np.int64) << 7
    result: npt.NDArray[np.uint8] = (code | sign).astype(np.uint8)
    return result


def round_bits(
    values: npt.NDArray[np.float64], bits: int | npt.NDArray[np.integer[Any]]
) -> npt.NDArray[np.float64]:
    """``values`` rounded to nearest (ties to even) with ``bits`` significant bits, the
    exponent unbounded: a register of that width, as an accumulator's (``bits`` may be an
    array that broadcasts against ``values``: registers of several widths at once)."""
    mantissa, exponent = np.frexp(values)
    rounded: npt.NDArray[np.float64] = np.ldexp(np.rint(np.ldexp(mantissa, bits)), exponent - bits)
    return rounded
