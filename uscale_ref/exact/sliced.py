"""The fixtures' expected values: the three sums on exact sliced products, rounded once.

Each sum of the convolution is written as matrix products (:mod:`.ozaki`
makes them exact), blocked so that memory stays bounded whatever the shape:

* forward, per group and block of output positions: the weight with the bias
  as one more column, times the input's patches (``im2col``) with a row of
  ones;
* dgrad, per group, batch item and block of input positions: for each tap
  ``k``, the tap's transposed weight times ``grad_output``, added where
  ``l s + k d`` lands (no inserted or padded zero is multiplied);
* wgrad, per group: ``grad_output`` times the transposed patches, the batch
  and length cut into chunks, with a column of ones for the bias gradient.

Complex sums are real ones on stacked parts: ``(Lr + i Li)(Rr + i Ri)``
has real part ``[Lr | -Li] @ [Rr; Ri]`` and imaginary part
``[Li | Lr] @ [Rr; Ri]`` (conjugates flip one sign). Each result is then
scaled by its float64 factor and rounded once to the target format; the
error scales are the same sums of absolute values (``|re| + |im|``), rounded
up to a few significant bits (:mod:`.bounds`). inf and NaN cannot be sliced:
they are set to zero for the exact sums, and the elements whose terms hold one take the IEEE value
of the textbook definition (:func:`_nonfinite`).

:func:`expected_results` has the signature of
:func:`uscale_ref.exact.doubledouble.expected_results`, the element-wise
double-double route, and gives the same bytes on the committed suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..formats import STORAGE
from ..geometry import Conv1dGeometry
from ..scales import Conv1dScales
from . import bounds, ozaki
from .doubledouble import _l1
from .doubledouble import parts as _parts

Float = npt.NDArray[np.float64]
Parts = tuple[Float, Float | None]
Conjugate = Literal["left", "right"] | None

# The most the blocks' temporaries may take (bytes), unless the caller says.
DEFAULT_MEMORY = 32 * 2**20

_PART_TARGET = {
    "float16": "float16",
    "float32": "float32",
    "float64": "float64",
    "bfloat16": "bfloat16",
    "complex32": "float16",
    "complex64": "float32",
    "complex128": "float64",
}


def _left(parts: Parts, conjugate: Conjugate) -> list[Float]:
    """The left operand of each output part (real, then imaginary) on stacked parts."""
    real, imag = parts
    if imag is None:
        return [real]
    if conjugate == "right":
        return [np.hstack([real, imag]), np.hstack([imag, -real])]
    if conjugate == "left":
        return [np.hstack([real, imag]), np.hstack([-imag, real])]
    return [np.hstack([real, -imag]), np.hstack([imag, real])]


def _right(parts: Parts) -> Float:
    real, imag = parts
    return real if imag is None else np.vstack([real, imag])


def _both(parts: Parts, function: Any) -> Parts:
    real, imag = parts
    return function(real), None if imag is None else function(imag)


def _patches(x_pad: Float, geometry: Conv1dGeometry, positions: range) -> Float:
    """``x_pad[n, i, l s + k d]``: rows ``(i, k)``, columns ``(n, l)``, ``l`` in ``positions``."""
    taps = np.arange(geometry.kernel_size) * geometry.dilation
    index = taps[:, None] + np.arange(positions.start, positions.stop)[None, :] * geometry.stride
    patches: Float = x_pad[:, :, index].transpose(1, 2, 0, 3)  # (i, k, n, l)
    return patches.reshape(-1, x_pad.shape[0] * len(positions))


@dataclass(frozen=True)
class _Block:
    """Batch items ``items`` times positions ``positions``: the columns of one product."""

    items: range
    positions: range

    @property
    def columns(self) -> int:
        return len(self.items) * len(self.positions)

    def where(self, channels: slice) -> tuple[slice, slice, slice]:
        """The block's place in a ``(N, channels, length)`` array."""
        items, positions = self.items, self.positions
        return slice(items.start, items.stop), channels, slice(positions.start, positions.stop)

    def __call__(self, a: Float) -> Float:
        """The block of a ``(N, channels, length)`` array."""
        return a[self.where(slice(None))]


def _blocks(batch: int, length: int, per_column: int, memory: int) -> list[_Block]:
    """Blocks of whole rows of several items, or of one item's row cut in pieces."""
    width = max(1, memory // max(1, per_column))
    if length <= width:
        step = width // length
        return [
            _Block(range(n, min(batch, n + step)), range(length)) for n in range(0, batch, step)
        ]
    return [
        _Block(range(n, n + 1), range(start, min(length, start + width)))
        for n in range(batch)
        for start in range(0, length, width)
    ]


def _flat(a: Float) -> Float:
    """``(n, c, l)`` as rows ``c`` and columns ``(n, l)``."""
    flat: Float = a.transpose(1, 0, 2).reshape(a.shape[1], -1)
    return flat


def _unflat(a: Float, items: int) -> Float:
    """Rows ``c`` and columns ``(n, l)`` back to ``(n, c, l)``."""
    batched: Float = a.reshape(a.shape[0], items, -1).transpose(1, 0, 2)
    return batched


def _row_exponent(operands: list[Float]) -> ozaki.Int:
    """One power of two per row above every operand's entries in that row."""
    axes = tuple(range(1, operands[0].ndim))
    exponents: ozaki.Int = np.max([ozaki.top_exponent(a, axes) for a in operands], axis=0)
    return exponents


def _per_group(a: Parts, group: int, size: int, axis: int) -> Parts:
    index = [slice(None)] * 3
    index[axis] = slice(group * size, (group + 1) * size)
    return _both(a, lambda v: v[tuple(index)])


def forward(
    x_pad: Parts,
    w: Parts,
    b: Parts | None,
    geometry: Conv1dGeometry,
    factor: float,
    target: str,
    memory: int = DEFAULT_MEMORY,
    unscaled_out: list[Float] | None = None,
) -> list[Float]:
    """``factor * (sum_{i,k} w[o,i,k] x_pad[n, g C_g + i, l s + k d] + b[o])``, rounded.

    One array ``(N, O, L_out)`` per part (real, then imaginary). When
    ``unscaled_out`` is a list, it receives the same sums without the factor,
    rounded to ``target`` too.
    """
    g = geometry
    out_g, n_parts = g.out_channels // g.groups, 1 if w[1] is None else 2
    inner = n_parts * g.fan_in * g.kernel_size + 1
    bits = ozaki.slice_bits(inner)
    result = [np.empty((g.batch_size, g.out_channels, g.out_length)) for _ in range(n_parts)]
    unscaled = _unscaled(unscaled_out, result)
    # The patches and their slices: about eight float64 copies per column.
    blocks = _blocks(g.batch_size, g.out_length, 8 * 8 * inner, memory)
    for group in range(g.groups):
        channels = slice(group * out_g, (group + 1) * out_g)
        w_group = _both(_per_group(w, group, out_g, 0), lambda v: v.reshape(out_g, -1))
        lefts = _left(w_group, None)
        bias: list[Float] = [np.zeros((out_g, 1))] * n_parts
        if b is not None:
            bias = [part[channels, None] for part in b if part is not None]
            bias += [np.zeros((out_g, 1))] * (n_parts - len(bias))
        lefts = [np.hstack([a, c]) for a, c in zip(lefts, bias, strict=True)]
        row_exponent = _row_exponent(lefts)
        left_slices = [ozaki.split(a, row_exponent, bits) for a in lefts]
        x_group = _per_group(x_pad, group, g.fan_in, 1)
        for block in blocks:
            patches = _both(
                x_group,
                lambda v, block=block: _patches(
                    v[block.items.start : block.items.stop], g, block.positions
                ),
            )
            right = np.vstack([_right(patches), np.ones((1, block.columns))])
            column_exponent = ozaki.top_exponent(right, 0)
            right_slices = ozaki.split(right, column_exponent, bits)
            for part, slices in enumerate(left_slices):
                limbs = ozaki.Limbs((out_g, block.columns), bits)
                ozaki.accumulate(limbs, slices, right_slices)
                frame = row_exponent + column_exponent
                values = _round(limbs, frame, factor, target)
                result[part][block.where(channels)] = _unflat(values, len(block.items))
                if unscaled:
                    values = ozaki.round_scaled(limbs, frame, 1.0, target)
                    unscaled[part][block.where(channels)] = _unflat(values, len(block.items))
    return result


#: The target of the error scales: the exact sums of magnitudes, rounded up to
#: :data:`bounds.ERROR_SCALE_BITS` significant bits (:mod:`.bounds`).
ERROR_SCALE = "error_scale"


def _round(limbs: ozaki.Limbs, frame: Any, factor: float, target: str) -> Float:
    """Round exact sums: to a format, or up to an error scale's few bits."""
    if target == ERROR_SCALE:
        return bounds.exact_round_up(limbs, frame, factor)
    return ozaki.round_scaled(limbs, frame, factor, target)


def _unscaled(out: list[Float] | None, like: list[Float]) -> list[Float]:
    """Fill ``out`` (when a list) with arrays shaped as ``like``'s, for the unscaled sums."""
    if out is None:
        return []
    out[:] = [np.empty(a.shape) for a in like]
    return out


def input_grad(
    delta: Parts,
    w: Parts,
    geometry: Conv1dGeometry,
    factor: float,
    target: str,
    memory: int = DEFAULT_MEMORY,
    unscaled_out: list[Float] | None = None,
) -> list[Float]:
    """``factor * sum conj(w[o,i,k]) delta[n,o,l]`` over ``l s + k d = t + p_l``, rounded.

    One array ``(N, C, L)`` per part. Per tap, the transposed weight times a
    block of ``grad_output``, added where the tap lands; no inserted or
    padded zero is multiplied. The block's positions ``t`` take their terms
    from the outputs ``l`` that reach them (:func:`_tap_reach`); each batch
    item has one power of two for all its columns, so that the taps, which
    read different columns, add into the same frame. ``unscaled_out``: as
    for :func:`forward`.
    """
    g = geometry
    out_g, n_parts = g.out_channels // g.groups, 1 if w[1] is None else 2
    bits = ozaki.slice_bits(n_parts * out_g)
    result = [np.empty((g.batch_size, g.in_channels, g.in_length)) for _ in range(n_parts)]
    unscaled = _unscaled(unscaled_out, result)
    blocks = _blocks(g.batch_size, g.in_length, 8 * 10 * n_parts * (out_g + g.fan_in), memory)
    for group in range(g.groups):
        channels = slice(group * g.fan_in, (group + 1) * g.fan_in)
        w_group = _per_group(w, group, out_g, 0)
        taps = [
            _left(_both(w_group, lambda v, k=k: v[:, :, k].T), "left") for k in range(g.kernel_size)
        ]
        row_exponent = _row_exponent([a for tap in taps for a in tap])
        tap_slices = [[ozaki.split(a, row_exponent, bits) for a in tap] for tap in taps]
        d_group = _per_group(delta, group, out_g, 1)
        for block in blocks:
            items = len(block.items)
            u0, u1 = block.positions.start + g.pad_left, block.positions.stop + g.pad_left
            reach = [_tap_reach(u0, u1, k, g) for k in range(g.kernel_size)]
            first = min((lo for lo, hi in reach if hi > lo), default=0)
            last = max((hi for lo, hi in reach if hi > lo), default=first)
            limbs = [
                ozaki.Limbs((g.fan_in, items, len(block.positions)), bits) for _ in range(n_parts)
            ]
            column_exponent = np.zeros((1, items, 1), dtype=np.int64)
            if last > first:
                window = _Block(block.items, range(first, last))
                stacked = _both(d_group, window)
                column_exponent = np.max(
                    [
                        ozaki.top_exponent(a, (1, 2)).transpose(1, 0, 2)
                        for a in stacked
                        if a is not None
                    ],
                    axis=0,
                )
                right = _right(_both(stacked, _flat))
                exponent = np.repeat(column_exponent[:, :, 0], last - first, axis=1)
                right_slices = ozaki.split(right, exponent, bits)
                for k, (lo, hi) in enumerate(reach):
                    if hi <= lo:
                        continue
                    start = lo * g.stride + k * g.dilation - u0
                    where = (
                        slice(None),
                        slice(None),
                        slice(start, start + (hi - lo - 1) * g.stride + 1, g.stride),
                    )
                    columns = (
                        np.arange(items)[:, None] * (last - first)
                        + np.arange(lo - first, hi - first)[None, :]
                    ).reshape(-1)
                    for part, slices in enumerate(tap_slices[k]):
                        ozaki.accumulate(
                            limbs[part],
                            slices,
                            right_slices,
                            where,
                            columns,
                            (g.fan_in, items, hi - lo),
                        )
            frame = row_exponent.reshape(-1, 1, 1) + column_exponent
            for part in range(n_parts):
                values = _round(limbs[part], frame, factor, target)
                result[part][block.where(channels)] = values.transpose(1, 0, 2)
                if unscaled:
                    values = ozaki.round_scaled(limbs[part], frame, 1.0, target)
                    unscaled[part][block.where(channels)] = values.transpose(1, 0, 2)
    return result


def _tap_reach(u0: int, u1: int, k: int, g: Conv1dGeometry) -> tuple[int, int]:
    """The outputs ``l`` in ``[lo, hi)`` whose tap ``k`` reads a padded position in ``[u0, u1)``."""
    offset = k * g.dilation
    lo = max(0, -(-(u0 - offset) // g.stride))
    hi = min(g.out_length, -(-(u1 - offset) // g.stride))
    return lo, max(lo, hi)


def weight_grad(
    delta: Parts,
    x_pad: Parts,
    geometry: Conv1dGeometry,
    factor: float,
    target: str,
    bias_factor: float | None = None,
    memory: int = DEFAULT_MEMORY,
    unscaled_out: list[Float] | None = None,
) -> tuple[list[Float], list[Float] | None]:
    """``factor * sum_{n,l} delta[n,o,l] conj(x_pad[n, g C_g + i, l s + k d])``, rounded.

    Also, when ``bias_factor`` is given, ``bias_factor * sum_{n,l} delta[n,o,l]``
    (a column of ones beside the patches). One array per part each. The
    batch and length are the inner dimension, cut into blocks whose exact
    products add up in the limbs. ``unscaled_out`` receives the weight
    gradient's parts, then the bias gradient's, without their factors.
    """
    g = geometry
    out_g, n_parts = g.out_channels // g.groups, 1 if x_pad[1] is None else 2
    columns = g.fan_in * g.kernel_size
    blocks = _blocks(g.batch_size, g.out_length, 8 * 8 * (n_parts * columns + out_g), memory)
    bits = ozaki.slice_bits(min(n_parts * blocks[0].columns, 2048))
    weight = [np.empty((g.out_channels, columns)) for _ in range(n_parts)]
    bias = [np.empty(g.out_channels) for _ in range(n_parts)] if bias_factor is not None else None
    unscaled = _unscaled(unscaled_out, weight + (bias or []))
    for group in range(g.groups):
        channels = slice(group * out_g, (group + 1) * out_g)
        d_group = _per_group(delta, group, out_g, 1)
        x_group = _per_group(x_pad, group, g.fan_in, 1)
        row_exponent = _row_exponent([a.transpose(1, 0, 2) for a in d_group if a is not None])
        x_exponent = _row_exponent([a.transpose(1, 0, 2) for a in x_group if a is not None])
        row_exponent, x_exponent = row_exponent.reshape(out_g, 1), x_exponent.reshape(-1)
        column_exponent = np.append(np.repeat(x_exponent, g.kernel_size), 1)[None, :]
        limbs = [ozaki.Limbs((out_g, columns + 1), bits) for _ in range(n_parts)]
        for block in blocks:
            lefts = _left(_both(_both(d_group, block), _flat), "right")
            patches = _both(
                x_group,
                lambda v, block=block: (
                    _patches(v[block.items.start : block.items.stop], g, block.positions).T
                ),
            )
            right = _right(patches)
            ones = np.zeros((right.shape[0], 1))
            ones[: block.columns] = 1.0
            right_slices = ozaki.split(np.hstack([right, ones]), column_exponent, bits)
            for part, left in enumerate(lefts):
                ozaki.accumulate(limbs[part], ozaki.split(left, row_exponent, bits), right_slices)
        frame = row_exponent + column_exponent
        for part in range(n_parts):
            carried = limbs[part].normalized()
            weights = ozaki.Limbs((out_g, columns), bits)
            weights.limbs = [limb[:, :columns] for limb in carried]
            weight[part][channels] = _round(weights, frame[:, :columns], factor, target)
            if unscaled:
                unscaled[part][channels] = ozaki.round_scaled(
                    weights, frame[:, :columns], 1.0, target
                )
            if bias is not None and bias_factor is not None:
                sums = ozaki.Limbs((out_g, 1), bits)
                sums.limbs = [limb[:, columns:] for limb in carried]
                bias[part][channels] = _round(sums, frame[:, columns:], bias_factor, target)[:, 0]
                if unscaled:
                    unscaled[n_parts + part][channels] = ozaki.round_scaled(
                        sums, frame[:, columns:], 1.0, target
                    )[:, 0]
    if unscaled:
        unscaled[:n_parts] = [a.reshape(geometry.weight_shape) for a in unscaled[:n_parts]]
    return [a.reshape(geometry.weight_shape) for a in weight], bias


def _nonfinite_inputs(*arrays: npt.NDArray[Any] | None) -> bool:
    return any(a is not None and not np.all(np.isfinite(a)) for a in arrays)


def _finite(a: Parts) -> Parts:
    return _both(a, lambda v: np.where(np.isfinite(v), v, 0.0))


def _pad(a: Parts, geometry: Conv1dGeometry) -> Parts:
    widths = ((0, 0), (0, 0), (geometry.pad_left, geometry.pad_right))
    return _both(a, lambda v: np.pad(v, widths))


def _combine(parts: list[Float], dtype: str) -> npt.NDArray[Any]:
    """Rounded float64 parts as the stored array of ``dtype``."""
    storage = STORAGE.get(dtype, dtype)
    if len(parts) == 1:
        return parts[0].astype(storage)
    result = np.empty(parts[0].shape, dtype=storage)
    result.real, result.imag = parts
    return result


def _nonfinite(
    x: npt.NDArray[Any],
    w: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    delta: npt.NDArray[Any],
    geometry: Conv1dGeometry,
) -> dict[str, npt.NDArray[Any]]:
    """Where a term holds inf or NaN, the IEEE value the definition gives (else finite).

    Every finite input is replaced by its sign (``-1, 0, 1``, keeping the
    sign of zeros), inf and NaN kept, and the unscaled sums taken by the
    textbook in float64: sums of small integers are exact in any order, and
    inf and NaN land where the definition puts them (``0 * inf`` is NaN in
    the forward and wgrad, which multiply the padding, not in dgrad). Only
    the non-finite elements of the results are used.
    """
    from .. import textbook

    def signs(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        if np.iscomplexobj(a):
            both = np.empty(np.shape(a), dtype=np.complex128)
            both.real, both.imag = signs(a.real), signs(a.imag)  # 1j * inf would be NaN
            return both
        a = np.asarray(a, dtype=np.float64)
        return np.where(np.isfinite(a), np.copysign(np.where(a == 0, 0.0, 1.0), a), a)

    sx, sw, sd = signs(x), signs(w), signs(delta)
    with np.errstate(all="ignore"):
        sums = {
            "output": textbook.forward_sum(sx, sw, geometry),
            "grad_input": textbook.input_grad(sd, sw, geometry),
            "grad_weight": textbook.weight_grad(sd, sx, geometry),
        }
        if b is not None:
            sums["output"] = sums["output"] + signs(b)[None, :, None]
            sums["grad_bias"] = textbook.bias_grad(sd)
    return sums


def _take_special(
    value: npt.NDArray[Any], special: npt.NDArray[Any], factor: float
) -> npt.NDArray[Any]:
    """``value`` with each part that is non-finite in ``special`` replaced by ``factor`` times it.

    Real and imaginary parts are taken apart: one may be inf while the other
    is an exact finite value. NaNs are made the one quiet NaN, whatever sign
    or payload the arithmetic left them.
    """
    result: npt.NDArray[Any] = value.copy()
    pairs = [(result, special)]
    if np.iscomplexobj(result):
        pairs = [(result.real, special.real), (result.imag, special.imag)]
    with np.errstate(all="ignore"):
        for part, sums in pairs:
            where = ~np.isfinite(sums)
            part[where] = (sums[where].real * factor).astype(part.dtype)
            part[np.isnan(part)] = np.nan
    return result


@dataclass(frozen=True)
class Prepared:
    """A case's inputs as the sums take them: float64 parts with inf and NaN set to zero,
    the input padded, and the magnitudes (``|re| + |im|``) of each."""

    x_pad: Parts
    w: Parts
    b: Parts | None
    delta: Parts
    abs_x_pad: Parts
    abs_w: Parts
    abs_b: Parts | None
    abs_delta: Parts


def prepare(
    x: npt.NDArray[Any],
    w: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    delta: npt.NDArray[Any],
    geometry: Conv1dGeometry,
) -> Prepared:
    """The inputs of :func:`expected_results` as :class:`Prepared`."""
    return Prepared(
        x_pad=_pad(_finite(_parts(x)), geometry),
        w=_finite(_parts(w)),
        b=None if b is None else _finite(_parts(b)),
        delta=_finite(_parts(delta)),
        abs_x_pad=_pad(_finite((_l1(x), None)), geometry),
        abs_w=_finite((_l1(w), None)),
        abs_b=None if b is None else _finite((_l1(b), None)),
        abs_delta=_finite((_l1(delta), None)),
    )


def expected_results(
    x: npt.NDArray[Any],
    w: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    delta: npt.NDArray[Any],
    geometry: Conv1dGeometry,
    scales: Conv1dScales,
    target: str | None = None,
    memory: int = DEFAULT_MEMORY,
    step: Callable[[], None] | None = None,
    unscaled_out: dict[str, npt.NDArray[Any]] | None = None,
) -> dict[str, tuple[npt.NDArray[Any], Float]]:
    """Expected ``output`` and gradients, each with its element-wise error scale.

    Arrays are batched; each result is its exact value times its scale,
    rounded once to ``target`` (default: the inputs' dtype; also
    ``"bfloat16"`` and ``"complex32"``, stored as float32 and complex64).
    The error scale is the same scaled sum of absolute values (``|re| + |im|``
    for complex), rounded up to :data:`bounds.ERROR_SCALE_BITS` significant
    bits. ``memory`` bounds the blocks' temporaries, in bytes. ``step()``,
    when given, is called after each of the six passes (three sums, each with
    its error scale): a progress hook.
    ``unscaled_out``, when a dict, receives each result's exact sum without
    its scale factor, rounded once to ``target``: what a kernel holds before
    it multiplies by the scale.
    """
    dtype = target or np.dtype(x.dtype).name
    part = _PART_TARGET[dtype]
    g = geometry
    inputs = prepare(x, w, b, delta, g)
    done = step or (lambda: None)
    keep: dict[str, list[Float]] | None = None
    if unscaled_out is not None:
        keep = {"output": [], "grad_input": [], "gradients": []}
    with np.errstate(all="ignore"):
        output = forward(
            inputs.x_pad, inputs.w, inputs.b, g, scales.output, part, memory,
            None if keep is None else keep["output"],
        )  # fmt: skip
        done()
        output_scale = forward(inputs.abs_x_pad, inputs.abs_w, inputs.abs_b, g,
                               abs(scales.output), ERROR_SCALE, memory)  # fmt: skip
        done()
        grad_input = input_grad(
            inputs.delta, inputs.w, g, scales.grad_input, part, memory,
            None if keep is None else keep["grad_input"],
        )  # fmt: skip
        done()
        grad_input_scale = input_grad(inputs.abs_delta, inputs.abs_w, g,
                                      abs(scales.grad_input), ERROR_SCALE, memory)  # fmt: skip
        done()
        bias_factor = None if b is None else scales.grad_bias
        abs_bias_factor = None if b is None else abs(scales.grad_bias)
        grad_weight, grad_bias = weight_grad(
            inputs.delta, inputs.x_pad, g, scales.grad_weight, part, bias_factor, memory,
            None if keep is None else keep["gradients"],
        )  # fmt: skip
        done()
        grad_weight_scale, grad_bias_scale = weight_grad(
            inputs.abs_delta, inputs.abs_x_pad, g, abs(scales.grad_weight), ERROR_SCALE,
            abs_bias_factor, memory,
        )  # fmt: skip
        done()
    results = {
        "output": (output, output_scale[0]),
        "grad_input": (grad_input, grad_input_scale[0]),
        "grad_weight": (grad_weight, grad_weight_scale[0]),
    }
    if grad_bias is not None and grad_bias_scale is not None:
        results["grad_bias"] = (grad_bias, grad_bias_scale[0])
    unscaled = None
    if keep is not None:
        n_parts = len(output)
        unscaled = {
            "output": keep["output"],
            "grad_input": keep["grad_input"],
            "grad_weight": keep["gradients"][:n_parts],
            "grad_bias": keep["gradients"][n_parts:],
        }
    return finish(results, unscaled, x, w, b, delta, g, scales, dtype, unscaled_out)


def finish(
    results: dict[str, tuple[list[Float], Float]],
    unscaled: dict[str, list[Float]] | None,
    x: npt.NDArray[Any],
    w: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    delta: npt.NDArray[Any],
    geometry: Conv1dGeometry,
    scales: Conv1dScales,
    dtype: str,
    unscaled_out: dict[str, npt.NDArray[Any]] | None,
) -> dict[str, tuple[npt.NDArray[Any], Float]]:
    """The rounded parts as arrays of ``dtype``, and the IEEE values where terms hold inf
    or NaN (the sums took them as zero); ``unscaled`` (the same without the factors) goes
    into ``unscaled_out``."""
    combined = {name: (_combine(parts, dtype), scale) for name, (parts, scale) in results.items()}
    if unscaled_out is not None and unscaled is not None:
        for name in combined:
            unscaled_out[name] = _combine(unscaled[name], dtype)
    if _nonfinite_inputs(x, w, b, delta):
        factors = {
            "output": scales.output,
            "grad_input": scales.grad_input,
            "grad_weight": scales.grad_weight,
            "grad_bias": scales.grad_bias,
        }
        values = _nonfinite(x, w, b, delta, geometry)
        magnitudes = _nonfinite(_l1(x), _l1(w), None if b is None else _l1(b), _l1(delta),
                                geometry)  # fmt: skip
        for name, (value, scale) in combined.items():
            combined[name] = (
                _take_special(value, values[name], factors[name]),
                _take_special(scale, magnitudes[name], abs(factors[name])),
            )
            if unscaled_out is not None:
                unscaled_out[name] = _take_special(unscaled_out[name], values[name], 1.0)
    return combined
