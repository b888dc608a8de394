"""The input as the kernel taps read it: ``x_pad[n, g C_g + i, l s + k d]`` for one block."""

from __future__ import annotations

from typing import Any

from .._backend import Array, Namespace, conj_if_complex
from ..geometry import Conv1dGeometry
from .blocks import window, windows
from .products import stack_taps

__all__ = ["as_work", "input_taps", "stacked_input_taps"]


def as_work(xp: Namespace, part: Array, work_dtype: Any, conjugate: bool = False) -> Array:
    """``part`` cast to the working dtype (if it is not in it) and, if asked, conjugated."""
    if part.dtype != work_dtype:
        part = xp.astype(part, work_dtype)
    return conj_if_complex(xp, part) if conjugate else part


def input_taps(
    xp: Namespace,
    x: Array,
    geometry: Conv1dGeometry,
    first_output: int,
    width: int,
    work_dtype: Any,
    conjugate: bool = False,
) -> list[Array]:
    """``x_pad[n, g C_g + i, l s + k d]`` for ``l`` in ``[first_output, first_output + width)``.

    One ``(N, G, C_g, B)`` array per tap ``k``, cast to the working dtype and,
    if asked, conjugated (once). Positions in the padding read zeros.

    The block's stretch of the padded input is cut (and cast) once and the
    taps are views of it, unless a stride or dilation far larger than the
    block makes that stretch long: then each tap is cut on its own
    (:func:`~uscale_ref.kernels.blocks.windows`), so the cost follows
    ``K B`` and never the stride, dilation or padding.
    """
    stride, dilation = geometry.stride, geometry.dilation
    start = first_output * stride - geometry.pad_left  # tap 0, in unpadded coordinates

    def prepare(part: Array) -> Array:
        part = as_work(xp, part, work_dtype, conjugate)
        return xp.reshape(part, (part.shape[0], geometry.groups, geometry.fan_in, part.shape[-1]))

    starts = [start + k * dilation for k in range(geometry.kernel_size)]
    return windows(xp, x, starts, width, stride, prepare)


def stacked_input_taps(
    xp: Namespace,
    x: Array,
    geometry: Conv1dGeometry,
    first_output: int,
    width: int,
    work_dtype: Any,
    conjugate: bool = False,
) -> Array:
    """The taps of :func:`input_taps` stacked as one ``(N, G, C_g K, B)`` matrix (``i`` major).

    When the stride is the kernel's whole span, ``s = K d`` (a "patchify"
    layer: stride equal to the kernel size, dilation 1), the taps of
    consecutive outputs tile the input: output ``l`` reads
    ``x_pad[l s + k d]``, which is element ``(l, k, 0)`` of the block's
    stretch of ``B s`` inputs seen as ``(B, K, d)``. The stacked matrix is
    then that view transposed, copied once in order; gathering ``K``
    strided taps measured about twice as slow for the same copy.
    """
    stride, kernel_size, dilation = geometry.stride, geometry.kernel_size, geometry.dilation
    if stride != kernel_size * dilation:
        taps = input_taps(xp, x, geometry, first_output, width, work_dtype, conjugate)
        return stack_taps(xp, taps)
    segment = window(xp, x, first_output * stride - geometry.pad_left, width * stride)
    segment = as_work(xp, segment, work_dtype, conjugate)
    batch, groups, fan_in = segment.shape[0], geometry.groups, geometry.fan_in
    tiles = xp.reshape(segment, (batch, groups, fan_in, width, kernel_size, dilation))[..., 0]
    return xp.reshape(
        xp.permute_dims(tiles, (0, 1, 2, 4, 3)), (batch, groups, fan_in * kernel_size, width)
    )
