"""The input as the kernel taps read it: ``x_pad[n, g C_g + i, l s + k d]`` for one block."""

from __future__ import annotations

from typing import Any

from .._backend import Array, Namespace, conj_if_complex
from ..geometry import Conv1dGeometry
from .blocks import windows

__all__ = ["input_taps"]


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
        if part.dtype != work_dtype:
            part = xp.astype(part, work_dtype)
        if conjugate:
            part = conj_if_complex(xp, part)
        return xp.reshape(part, (part.shape[0], geometry.groups, geometry.fan_in, part.shape[-1]))

    starts = [start + k * dilation for k in range(geometry.kernel_size)]
    return windows(xp, x, starts, width, stride, prepare)
