"""Deterministic fixture inputs: the same bits from a seed on every machine and version.

NumPy's random generators do not promise the same stream across releases, and
normal samplers call ``log``/``cos`` from the platform's maths library. So the
fixtures draw from SplitMix64 (Steele, Lea and Flood, 2014; integer arithmetic
only) and turn each 64-bit word into four 16-bit uniforms whose sum, centred
and scaled, has mean 0 and variance 1 (an Irwin-Hall approximation of the
normal distribution, built from exact additions and one multiplication).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from ..formats import round_to

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Four uniforms on [-1, 1) have variance 4/3; this brings it to 1 (sqrt(3)/2).
_UNIT_VARIANCE = 0.8660254037844386


def splitmix64(seed: int, count: int) -> npt.NDArray[np.uint64]:
    """``count`` successive SplitMix64 outputs from ``seed``."""
    with np.errstate(over="ignore"):
        state = np.uint64(seed % 2**64) + _GAMMA * np.arange(1, count + 1, dtype=np.uint64)
        z = (state ^ (state >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        words: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
        return words


def standard_values(seed: int, count: int) -> npt.NDArray[np.float64]:
    """``count`` float64 samples with mean 0 and variance 1, bit-identical everywhere."""
    words = splitmix64(seed, count)
    total = np.zeros(count)
    for shift in (0, 16, 32, 48):
        quarter = ((words >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.float64)
        total += (quarter - 32768.0) / 32768.0
    return total * _UNIT_VARIANCE


def seed_for(case_id: str, name: str) -> int:
    """A stable seed for one array of one case (CRC-32 of ``case_id/name``)."""
    return zlib.crc32(f"{case_id}/{name}".encode())


def draw(
    case_id: str, name: str, shape: tuple[int, ...], dtype: str, format: str | None = None
) -> npt.NDArray[Any]:
    """The array ``name`` of case ``case_id``: unit variance, rounded once to ``dtype``.

    Complex arrays have independent real and imaginary parts of variance 1/2
    each, so that ``E|z|^2 = 1``. ``bfloat16`` values are stored as float32
    and ``complex32`` ones as complex64; ``format`` (an FP8 format) rounds
    float32 values once more, into that format.
    """
    if dtype == "bfloat16":
        return round_to(draw(case_id, name, shape, "float32"), "bfloat16")
    if dtype == "complex32":
        wide = draw(case_id, name, shape, "complex64")
        result = np.empty(shape, dtype=np.complex64)
        result.real = round_to(wide.real.copy(), "float16")
        result.imag = round_to(wide.imag.copy(), "float16")
        return result
    if format is not None:
        return round_to(draw(case_id, name, shape, dtype), format)
    numpy_dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    seed = seed_for(case_id, name)
    if numpy_dtype.kind != "c":
        return standard_values(seed, count).reshape(shape).astype(numpy_dtype)
    values = standard_values(seed, 2 * count) * 0.7071067811865476  # sqrt(1/2)
    part = np.float32 if numpy_dtype == np.complex64 else np.float64
    result = np.empty(shape, dtype=numpy_dtype)
    result.real = values[:count].reshape(shape).astype(part)
    result.imag = values[count:].reshape(shape).astype(part)
    return result
