"""The forward kernel: ``scale * (bias + correlate(x_pad, weight))``, block by block.

Its textbook counterpart is :func:`uscale_ref.textbook.forward_sum` (plus the
bias and the scale of :func:`uscale_ref.textbook.conv1d`).
"""

from __future__ import annotations

from .._backend import Array, Namespace, compute_dtype
from ..geometry import Conv1dGeometry
from . import banded, folded
from .blocks import map_blocks
from .plan import Plan
from .products import matmul, sum_over_taps
from .taps import input_taps, stacked_input_taps

__all__ = ["forward"]


def forward(
    xp: Namespace,
    x: Array,
    weight: Array,
    geometry: Conv1dGeometry,
    plan: Plan,
    *,
    bias: Array | None = None,
    scale: float = 1.0,
) -> Array:
    """``scale * (bias[o] + sum_{i,k} w[o,i,k] x_pad[n, g C_g + i, l s + k d])``, ``(N, O, L_out)``.

    ``x`` is batched and cast block by block; ``weight`` and ``bias`` are in
    the working dtype already.

    Why it equals the textbook: each output block ``[l0, l1)`` needs exactly
    the padded input the textbook's correlation reads for it, which
    :func:`~uscale_ref.kernels.taps.input_taps` cuts (zeros in the padding,
    multiplied like the textbook's); per tap the channel sum is the same
    sum, done as a matrix product (``per_tap``), as ``C_g`` element-wise
    products (``broadcast``), with all taps side by side in one product
    (``stacked``), with the batch items end to end in one product per tap
    (``folded``, :mod:`~uscale_ref.kernels.folded`) or, for depthwise
    blocks whose data is finite, as band matrix products (``banded``,
    :mod:`~uscale_ref.kernels.banded`). Blocks only split the independent
    output positions.
    """
    groups, out_channels = geometry.groups, geometry.out_channels
    out_per_group, fan_in, kernel_size = (
        out_channels // groups,
        geometry.fan_in,
        geometry.kernel_size,
    )
    work_dtype = compute_dtype(xp, x.dtype)
    bands = None
    if plan.path == "banded":  # None when a tap is not finite: then every block sums directly
        bands = banded.bands_for(xp, weight[:, 0, :], geometry.dilation, -geometry.pad_left)

    weight_g = xp.reshape(weight, (groups, out_per_group, fan_in, kernel_size))
    taps_w = [weight_g[..., k] for k in range(kernel_size)]  # (G, O_g, C_g) each
    offsets = [k * geometry.dilation for k in range(kernel_size)]
    stacked = None
    if plan.path == "stacked":
        stacked = xp.reshape(weight_g, (groups, out_per_group, fan_in * kernel_size))
    bias_o = None if bias is None else xp.reshape(bias, (out_channels, 1))
    broadcast = plan.path in ("broadcast", "banded")

    def block(n0: int, n1: int, l0: int, l1: int) -> Array:
        result = None if bands is None else bands.correlate(x[n0:n1, ...], l0, l1, work_dtype)
        if result is None and plan.path == "folded":  # stride 1: tap k reads l + k d
            start, width = l0 - geometry.pad_left, l1 - l0
            result = folded.correlate(
                xp, taps_w, offsets, x[n0:n1, ...], groups, start, width, work_dtype
            )
        elif result is None and stacked is not None:
            columns = stacked_input_taps(xp, x[n0:n1, ...], geometry, l0, l1 - l0, work_dtype)
            result = xp.reshape(matmul(xp, stacked, columns), (n1 - n0, out_channels, l1 - l0))
        elif result is None:
            taps = input_taps(xp, x[n0:n1, ...], geometry, l0, l1 - l0, work_dtype)
            result = sum_over_taps(xp, taps_w, taps, None, broadcast)
            result = xp.reshape(result, (n1 - n0, out_channels, l1 - l0))
        if bias_o is not None:
            result += bias_o
        if scale != 1.0:
            result *= scale
        return result

    return map_blocks(xp, plan, block, geometry.batch_size, 0, geometry.out_length)
