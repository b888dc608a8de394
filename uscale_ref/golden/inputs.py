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
    return splitmix64_at(seed, np.arange(count, dtype=np.uint64))


def splitmix64_at(seed: int, index: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """The SplitMix64 outputs number ``index`` (0 for the first) of the stream from ``seed``.

    Output ``i`` mixes the state ``seed + (i + 1) * 0x9E3779B97F4A7C15`` (mod
    2**64) on its own: any element of a stream is computed without the others.
    """
    with np.errstate(over="ignore"):  # the arithmetic is mod 2**64; in place, one buffer
        z = np.array(index, dtype=np.uint64)  # a copy, also of one index (a 0-d array)
        z += np.uint64(1)
        z *= _GAMMA
        z += np.uint64(seed % 2**64)
        shifted = np.right_shift(z, np.uint64(30), out=np.empty_like(z))
        z ^= shifted
        z *= _MIX1
        z ^= np.right_shift(z, np.uint64(27), out=shifted)
        z *= _MIX2
        z ^= np.right_shift(z, np.uint64(31), out=shifted)
        words: npt.NDArray[np.uint64] = z
        return words


def standard_values(seed: int, count: int) -> npt.NDArray[np.float64]:
    """``count`` float64 samples with mean 0 and variance 1, bit-identical everywhere."""
    return standard_values_at(seed, np.arange(count, dtype=np.int64))


def standard_values_at(seed: int, index: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The samples number ``index`` of the stream from ``seed`` (see :func:`standard_values`):
    the four 16-bit quarters ``q`` of the word, each centred to ``(q - 32768) / 32768`` in
    ``[-1, 1)``, summed, times ``sqrt(3) / 2``.

    The four centred quarters and their sum are exact in float64 (small integers over
    ``2**15``), so the sum is ``(q0 + q1 + q2 + q3 - 131072) / 32768`` in any order; only
    the last multiplication rounds.
    """
    words = splitmix64_at(seed, index)
    # q0 + q1 + q2 + q3 in two steps on the whole word: quarters paired into 32-bit lanes
    # (each sum below 2**17), then the two lanes added.
    lanes = np.uint64(0x0000FFFF0000FFFF)
    part = np.right_shift(words, np.uint64(16), out=np.empty_like(words))
    part &= lanes
    words &= lanes
    words += part
    words += np.right_shift(words, np.uint64(32), out=part)
    words &= np.uint64(0xFFFFFFFF)
    total = words.view(np.int64)
    total -= 131072
    values: npt.NDArray[np.float64] = total.astype(np.float64)
    values /= 32768.0
    values *= _UNIT_VARIANCE
    return values


def seed_for(case_id: str, name: str) -> int:
    """A stable seed for one array of one case (CRC-32 of ``case_id/name``)."""
    return zlib.crc32(f"{case_id}/{name}".encode())


def draw(
    case_id: str, name: str, shape: tuple[int, ...], dtype: str, format: str | None = None
) -> npt.NDArray[Any]:
    """The array ``name`` of case ``case_id``: unit variance, rounded once to ``dtype``.

    Complex arrays have independent real and imaginary parts of variance 1/2
    each, so that ``E|z|^2 = 1``. ``bfloat16`` values are stored as float32
    and ``complex32`` ones as complex64; ``format`` (an operand's narrower
    format) rounds float32 values once more, into that format, whatever the
    dtype of the results (they are then float32 arrays).
    """
    if format is not None:
        return round_to(draw(case_id, name, shape, "float32"), format)
    if dtype == "bfloat16":
        return round_to(draw(case_id, name, shape, "float32"), "bfloat16")
    if dtype == "complex32":
        wide = draw(case_id, name, shape, "complex64")
        result = np.empty(shape, dtype=np.complex64)
        result.real = round_to(wide.real.copy(), "float16")
        result.imag = round_to(wide.imag.copy(), "float16")
        return result
    count = int(np.prod(shape))
    return draw_at(case_id, name, shape, dtype, format, np.arange(count, dtype=np.int64)).reshape(
        shape
    )


def draw_at(
    case_id: str,
    name: str,
    shape: tuple[int, ...],
    dtype: str,
    format: str | None,
    flat: npt.ArrayLike,
) -> npt.NDArray[Any]:
    """The elements at flat (C-order) positions ``flat`` of :func:`draw`'s array, each
    computed on its own: ``draw(...).reshape(-1)[flat]`` without drawing the rest.

    Element ``i`` of a real array is sample ``i`` of the stream seeded by
    :func:`seed_for`; of a complex array, samples ``i`` (real part) and
    ``count + i`` (imaginary part) times ``sqrt(1/2)``, ``count`` the array's
    size. Each is rounded once to the dtype's parts (bfloat16 through float32,
    complex32 through complex64, an operand's ``format`` through float32).
    """
    flat = np.asarray(flat, dtype=np.int64)
    if format is not None:
        return round_to(draw_at(case_id, name, shape, "float32", None, flat), format)
    if dtype == "bfloat16":
        return round_to(draw_at(case_id, name, shape, "float32", None, flat), "bfloat16")
    if dtype == "complex32":
        wide = draw_at(case_id, name, shape, "complex64", None, flat)
        result = np.empty(flat.shape, dtype=np.complex64)
        result.real = round_to(wide.real.copy(), "float16")
        result.imag = round_to(wide.imag.copy(), "float16")
        return result
    numpy_dtype = np.dtype(dtype)
    seed = seed_for(case_id, name)
    if numpy_dtype.kind != "c":
        return standard_values_at(seed, flat).astype(numpy_dtype)
    count = int(np.prod(shape))
    half = 0.7071067811865476  # sqrt(1/2)
    part = np.float32 if numpy_dtype == np.complex64 else np.float64
    complex_result = np.empty(flat.shape, dtype=numpy_dtype)
    complex_result.real = (standard_values_at(seed, flat) * half).astype(part)
    complex_result.imag = (standard_values_at(seed, flat + count) * half).astype(part)
    return complex_result


#: Every drawn value is below this power of two in magnitude: four centred uniforms on
#: [-1, 1) sum to less than 4, times sqrt(3)/2 is below 3.4642, and no rounding into a
#: dtype or FP8 format reaches 4.
DRAWN_EXPONENT = 2


class SeededSource:
    """A case's inputs drawn on demand: any element by its flat index, on its own.

    ``at(name, flat)`` gives the values :func:`draw` would put at those flat
    positions (in the case's storage dtype); the weight and bias, small, are
    drawn whole once. A :class:`uscale_ref.exact.points.Source`.
    """

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.names = ("input", "weight", "grad_output") + (("bias",) if spec.bias else ())
        self._whole: dict[str, npt.NDArray[Any]] = {}

    def shape(self, name: str) -> tuple[int, ...]:
        spec = self.spec
        shapes: dict[str, tuple[int, ...]] = {
            "input": spec.input_shape,
            "weight": spec.weight_shape,
            "bias": (spec.out_channels,),
            "grad_output": spec.geometry.output_shape,
        }
        return shapes[name]

    def at(self, name: str, flat: npt.ArrayLike) -> npt.NDArray[Any]:
        flat = np.asarray(flat, dtype=np.int64)
        if name in self._whole or name in ("weight", "bias"):
            values: npt.NDArray[Any] = self.whole(name).reshape(-1)[flat]
            return values
        spec = self.spec
        return draw_at(spec.input_id, name, self.shape(name), spec.dtype,
                       spec.formats.get(name), flat)  # fmt: skip

    def whole(self, name: str) -> npt.NDArray[Any]:
        """The whole array ``name``, drawn in blocks (no float64 copy of it all)."""
        if name in self._whole:
            return self._whole[name]
        spec = self.spec
        shape = self.shape(name)
        count = int(np.prod(shape))
        result = np.empty(count, dtype=spec.operand_dtype(name))
        block = 2**22
        for start in range(0, count, block):
            flat = np.arange(start, min(count, start + block), dtype=np.int64)
            result[start : start + block] = draw_at(
                spec.input_id, name, shape, spec.dtype, spec.formats.get(name), flat
            )
        array = result.reshape(shape)
        if name in ("weight", "bias"):
            self._whole[name] = array
        return array

    def exponent(self, name: str) -> int:
        return DRAWN_EXPONENT
