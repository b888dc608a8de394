"""A second route to the expected values: element-wise double-double sums, rounded once.

The fixtures are built by :mod:`uscale_ref.exact.sliced` (exact sums
through BLAS); this module computes the same values element by element,
without BLAS, and the tests hold the two to the same bytes. It is slow
(a Python loop over channels and taps) and kept as that independent check.

Golden fixtures must (a) be byte-identical on every machine and (b) be more
accurate than the fixture's dtype. BLAS gives neither: its summation order
depends on the library, the CPU and the thread count. So the sums here use only
element-wise IEEE-754 float64 additions and multiplications, which are exact
operations defined bit for bit, arranged as *error-free transformations*:

* ``two_sum(a, b)`` returns ``s = fl(a + b)`` and the exact rounding error
  ``e`` with ``a + b = s + e`` (Knuth);
* ``two_prod(a, b)`` returns ``p = fl(a b)`` and ``e`` with ``a b = p + e``,
  using Dekker's splitting into 26-bit halves (no fused multiply-add needed).

A value is carried as an unevaluated pair ``hi + lo`` ("double-double", about
106 significant bits). Each product of two float64 numbers is exact in this
form, and each addition loses at most about :math:`2^{-104}` relative to the
terms, so for the short sums of a convolution the pair is far closer to the
exact value than one float64 ulp. Reductions are pairwise, in a fixed order.

:func:`round_to` then rounds ``hi + lo`` correctly to float64, float32 or
float16 (the double-rounding trap at exact midpoints is handled).

Complex values are a pair of such real values (real and imaginary part); a
complex product is four exact real products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import formats
from ..geometry import Conv1dGeometry
from ..scales import Conv1dScales

Float = npt.NDArray[np.float64]

_SPLITTER = 134217729.0  # 2**27 + 1: splits a float64 into two 26-bit halves


def two_sum(a: Float, b: Float) -> tuple[Float, Float]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``a + b = s + e`` exactly."""
    s = a + b
    b_virtual = s - a
    e = (a - (s - b_virtual)) + (b - b_virtual)
    return s, e


def _fast_two_sum(a: Float, b: Float) -> tuple[Float, Float]:
    """``two_sum`` for ``|a| >= |b|`` (or a == 0)."""
    s = a + b
    return s, b - (s - a)


def _split(a: Float) -> tuple[Float, Float]:
    t = _SPLITTER * a
    high = t - (t - a)
    return high, a - high


def two_prod(a: Float, b: Float) -> tuple[Float, Float]:
    """``(p, e)`` with ``p = fl(a b)`` and ``a b = p + e`` exactly (Dekker)."""
    p = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(b)
    e = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low
    return p, e


@dataclass
class DD:
    """A real double-double array ``hi + lo``."""

    hi: Float
    lo: Float

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> DD:
        return cls(np.zeros(shape), np.zeros(shape))

    @classmethod
    def exact(cls, a: Float) -> DD:
        return cls(np.asarray(a, dtype=np.float64), np.zeros(np.shape(a)))

    def __add__(self, other: DD) -> DD:
        s, e = two_sum(self.hi, other.hi)
        t, f = two_sum(self.lo, other.lo)
        s, e = _fast_two_sum(s, e + t)
        s, e = _fast_two_sum(s, e + f)
        return DD(s, e)

    def __neg__(self) -> DD:
        return DD(-self.hi, -self.lo)

    def __getitem__(self, index: Any) -> DD:
        return DD(self.hi[index], self.lo[index])

    def __setitem__(self, index: Any, value: DD) -> None:
        self.hi[index] = value.hi
        self.lo[index] = value.lo

    def scaled(self, factor: float) -> DD:
        """``factor * (hi + lo)`` for a float64 ``factor``."""
        p, e = two_prod(self.hi, np.full_like(self.hi, factor))
        return DD(*_fast_two_sum(p, e + self.lo * factor))

    def reshape(self, shape: tuple[int, ...]) -> DD:
        return DD(self.hi.reshape(shape), self.lo.reshape(shape))

    def sum_last_axis(self) -> DD:
        """Pairwise sum over the last axis, in a fixed order."""
        value = self
        while value.hi.shape[-1] > 1:
            if value.hi.shape[-1] % 2:
                pad = [(0, 0)] * (value.hi.ndim - 1) + [(0, 1)]
                value = DD(np.pad(value.hi, pad), np.pad(value.lo, pad))
            value = value[..., 0::2] + value[..., 1::2]
        return value[..., 0]


def product(a: Float, b: Float) -> DD:
    """The exact product ``a b`` of two float64 arrays (broadcast) as a double-double."""
    a, b = np.broadcast_arrays(a, b)
    return DD(*two_prod(a, b))


def _stack_last(parts: list[DD]) -> DD:
    return DD(np.stack([p.hi for p in parts], -1), np.stack([p.lo for p in parts], -1))


def round_to(value: DD, dtype: np.dtype[np.floating]) -> npt.NDArray[np.floating]:
    """Round ``hi + lo`` correctly to float64, float32 or float16 (to nearest, ties to even)."""
    hi, lo = value.hi, value.lo
    if dtype == np.float64:
        # A normalised pair has |lo| <= ulp(hi) / 2, so hi is already the
        # nearest float64 (ties went to even when hi was formed).
        nearest: npt.NDArray[np.floating] = hi.copy()
        return nearest
    rounded = hi.astype(dtype)
    # hi + lo rounds differently from hi only when hi sits exactly half-way
    # between two numbers of `dtype` and lo pushes it off the midpoint: a
    # direct conversion of hi would then be a second, wrong rounding.
    other = np.nextafter(rounded, np.where(hi > rounded, np.inf, -np.inf).astype(dtype))
    below, above = rounded.astype(np.float64), other.astype(np.float64)
    midpoint = (hi - below) == (above - hi)
    pushed_over = (lo != 0) & (np.sign(lo) == np.sign(above - below))
    result: npt.NDArray[np.floating] = np.where(midpoint & pushed_over, other, rounded)
    return result


def round_to_format(value: DD, format: str) -> Float:
    """Round ``hi + lo`` correctly to ``format`` (e.g. ``"bfloat16"``), as float64 values.

    Rounding ``hi`` alone is right unless ``hi`` sits exactly half-way
    between two numbers of the format and ``lo`` pushes it off the midpoint;
    then the neighbour on ``lo``'s side is the correctly rounded result.
    """
    hi, lo = value.hi, value.lo
    nearest = formats.round_to(hi, format)
    toward_zero = formats.round_to(hi, format, "toward_zero")
    gap = formats.spacing(toward_zero, format)
    midpoint = np.abs(hi - toward_zero) == gap / 2
    away = np.sign(lo) == np.sign(hi)
    other = np.where(away, toward_zero + np.sign(hi) * gap, toward_zero)
    result: Float = np.where(midpoint & (lo != 0), other, nearest)
    return result


# --------------------------------------------------------------------------
# The three sums, real arrays only, batched (N, C, L) layout.


def _tap_slice(k: int, geometry: Conv1dGeometry) -> slice:
    """Positions ``l s + k d`` of the padded input read by tap ``k``."""
    start = k * geometry.dilation
    return slice(start, start + (geometry.out_length - 1) * geometry.stride + 1, geometry.stride)


def _sizes(geometry: Conv1dGeometry) -> tuple[int, int, int, int, int]:
    groups = geometry.groups
    return (
        geometry.batch_size,
        groups,
        geometry.out_channels // groups,
        geometry.fan_in,
        geometry.kernel_size,
    )


def pad(x: Float, geometry: Conv1dGeometry) -> Float:
    """Zero padding of a batched input on the last axis."""
    return np.pad(x, ((0, 0), (0, 0), (geometry.pad_left, geometry.pad_right)))


def forward_dd(x_pad: Float, w: Float, geometry: Conv1dGeometry) -> DD:
    """``sum_{i,k} w[o,i,k] x_pad[n, g C_g + i, l s + k d]`` as a double-double."""
    n, groups, out_g, fan_in, kernel = _sizes(geometry)
    x4 = x_pad.reshape(n, groups, fan_in, -1)
    w4 = w.reshape(groups, out_g, fan_in, kernel)
    total = DD.zeros((n, groups, out_g, geometry.out_length))
    for i in range(fan_in):
        for k in range(kernel):
            taps = x4[:, :, None, i, _tap_slice(k, geometry)]
            total = total + product(w4[None, :, :, i, k, None], taps)
    return total.reshape((n, geometry.out_channels, geometry.out_length))


def input_grad_dd(delta: Float, w: Float, geometry: Conv1dGeometry) -> DD:
    """``sum w[o,i,k] delta[n,o,l]`` over ``l s + k d = t + p_l`` (no conjugate here)."""
    n, groups, out_g, fan_in, kernel = _sizes(geometry)
    d4 = delta.reshape(n, groups, out_g, geometry.out_length)
    w4 = w.reshape(groups, out_g, fan_in, kernel)
    total = DD.zeros((n, groups, fan_in, geometry.padded_length))
    for j in range(out_g):
        for k in range(kernel):
            where = (..., _tap_slice(k, geometry))
            total[where] = total[where] + product(w4[None, :, j, :, k, None], d4[:, :, j, None, :])
    crop = slice(geometry.pad_left, geometry.pad_left + geometry.in_length)
    return total[..., crop].reshape((n, geometry.in_channels, geometry.in_length))


def weight_grad_dd(delta: Float, x_pad: Float, geometry: Conv1dGeometry) -> DD:
    """``sum_{n,l} delta[n,o,l] x_pad[n, g C_g + i, l s + k d]`` (no conjugate here)."""
    n, groups, out_g, fan_in, kernel = _sizes(geometry)
    # (G, O_g, 1, N, L_out) times (G, 1, C_g, N, L_out), summed over (N, L_out)
    d5 = delta.reshape(n, groups, out_g, -1).transpose(1, 2, 0, 3)[:, :, None]
    x4 = x_pad.reshape(n, groups, fan_in, -1)
    per_tap = []
    for k in range(kernel):
        taps = x4[..., _tap_slice(k, geometry)].transpose(1, 2, 0, 3)[:, None]
        terms = product(d5, taps).reshape((groups, out_g, fan_in, -1))
        per_tap.append(terms.sum_last_axis())
    return _stack_last(per_tap).reshape(geometry.weight_shape)


def sum_batch_and_length(delta: Float) -> DD:
    """``sum_{n,l} delta[n,o,l]`` as a double-double, pairwise."""
    return DD.exact(delta.transpose(1, 0, 2).reshape(delta.shape[1], -1)).sum_last_axis()


# --------------------------------------------------------------------------
# Complex arithmetic from real parts.

Parts = tuple[Float, Float | None]  # (real, imaginary or None)


def parts(a: npt.NDArray[np.generic]) -> Parts:
    """Real and imaginary parts as float64 (exactly); ``None`` for a real array."""
    if np.iscomplexobj(a):
        return a.real.astype(np.float64), a.imag.astype(np.float64)
    return np.asarray(a, dtype=np.float64), None


def bilinear(
    function: object, a: Parts, b: Parts, *, conjugate_b: bool = False
) -> tuple[DD, DD | None]:
    """Apply a real bilinear double-double ``function(a, b)`` to complex ``a`` and ``b``.

    With ``a = ar + i ai`` and ``b = br + i bi`` (``bi`` negated when
    ``conjugate_b``): real part ``f(ar, br) - f(ai, bi)``, imaginary part
    ``f(ai, br) + f(ar, bi)``. Each ``f`` is a double-double sum, so the
    result keeps that accuracy.
    """
    f = function
    (ar, ai), (br, bi) = a, b
    if bi is not None and conjugate_b:
        bi = -bi
    real = f(ar, br)  # type: ignore[operator]
    if ai is not None and bi is not None:
        real = real + -f(ai, bi)  # type: ignore[operator]
    if ai is None and bi is None:
        return real, None
    imag = DD.zeros(real.hi.shape)
    if ai is not None:
        imag = imag + f(ai, br)  # type: ignore[operator]
    if bi is not None:
        imag = imag + f(ar, bi)  # type: ignore[operator]
    return real, imag


# --------------------------------------------------------------------------
# Everything a fixture holds, from the stored inputs.


def _round_parts(value: tuple[DD, DD | None], target: str) -> npt.NDArray[Any]:
    """Round to the target dtype: a NumPy dtype name, ``"bfloat16"`` (stored as float32)
    or ``"complex32"`` (float16 parts, stored as complex64)."""
    real, imag = value
    if target == "bfloat16":
        return round_to_format(real, "bfloat16").astype(np.float32)
    dtype = np.dtype("complex64" if target == "complex32" else target)
    if dtype.kind != "c":
        return round_to(real, dtype)
    part_dtype = np.dtype(
        {"complex32": np.float16, "complex64": np.float32}.get(target, np.float64)
    )
    assert imag is not None
    result = np.empty(real.hi.shape, dtype=dtype)
    result.real = round_to(real, part_dtype)
    result.imag = round_to(imag, part_dtype)
    return result


def _l1(a: npt.NDArray[np.generic]) -> Float:
    """``|re| + |im|``: bounds the modulus without hypot, whose last bit varies by libm."""
    real, imag = parts(a)
    return np.abs(real) if imag is None else np.abs(real) + np.abs(imag)


def expected_results(
    x: npt.NDArray[np.generic],
    w: npt.NDArray[np.generic],
    b: npt.NDArray[np.generic] | None,
    delta: npt.NDArray[np.generic],
    geometry: Conv1dGeometry,
    scales: Conv1dScales,
    target: str | None = None,
) -> dict[str, tuple[npt.NDArray[Any], Float]]:
    """Expected ``output`` and gradients, each with its element-wise error scale.

    Arrays are batched; results are rounded once from the double-double
    values to ``target`` (default: the inputs' dtype; also ``"bfloat16"``
    and ``"complex32"``, stored as float32 and complex64). The error scale
    of each result is the same scaled sum built from absolute values
    (``|re| + |im|`` for complex), as float64: the size of the terms,
    against which rounding is judged.
    """
    dtype = target or np.dtype(x.dtype).name
    x_pad = parts(x)
    x_pad = (pad(x_pad[0], geometry), None if x_pad[1] is None else pad(x_pad[1], geometry))
    w_parts, delta_parts = parts(w), parts(delta)
    abs_x_pad = pad(_l1(x), geometry)
    abs_w, abs_delta = _l1(w), _l1(delta)

    def forward(a: Float, c: Float) -> DD:
        return forward_dd(a, c, geometry)

    output = bilinear(lambda a, c: forward(c, a), w_parts, x_pad)
    output_scale = forward(abs_x_pad, abs_w)
    if b is not None:
        b_real, b_imag = parts(b)
        broadcast = np.broadcast_to(b_real[None, :, None], output[0].hi.shape).copy()
        output = (output[0] + DD.exact(broadcast), output[1])
        if b_imag is not None and output[1] is not None:
            broadcast = np.broadcast_to(b_imag[None, :, None], output[1].hi.shape).copy()
            output = (output[0], output[1] + DD.exact(broadcast))
        b_abs = np.broadcast_to(_l1(b)[None, :, None], output_scale.hi.shape).copy()
        output_scale = output_scale + DD.exact(b_abs)

    grad_input = bilinear(
        lambda d, c: input_grad_dd(d, c, geometry), delta_parts, w_parts, conjugate_b=True
    )
    grad_input_scale = input_grad_dd(abs_delta, abs_w, geometry)
    grad_weight = bilinear(
        lambda d, c: weight_grad_dd(d, c, geometry), delta_parts, x_pad, conjugate_b=True
    )
    grad_weight_scale = weight_grad_dd(abs_delta, abs_x_pad, geometry)

    def finish(
        value: tuple[DD, DD | None], magnitude: DD, factor: float
    ) -> tuple[npt.NDArray[Any], Float]:
        real, imag = value
        scaled = (real.scaled(factor), None if imag is None else imag.scaled(factor))
        return _round_parts(scaled, dtype), magnitude.scaled(abs(factor)).hi

    results = {
        "output": finish(output, output_scale, scales.output),
        "grad_input": finish(grad_input, grad_input_scale, scales.grad_input),
        "grad_weight": finish(grad_weight, grad_weight_scale, scales.grad_weight),
    }
    if b is not None:
        real, imag = delta_parts
        bias_sum = (
            sum_batch_and_length(real),
            None if imag is None else sum_batch_and_length(imag),
        )
        results["grad_bias"] = finish(bias_sum, sum_batch_and_length(abs_delta), scales.grad_bias)
    return results
