"""The wgrad kernel: ``scale * grad_weight``, summed block by block.

Its textbook counterpart is :func:`uscale_ref.textbook.weight_grad`.
"""

from __future__ import annotations

from .._backend import Array, Namespace
from ..geometry import Conv1dGeometry
from .blocks import sum_blocks
from .plan import Plan
from .products import matmul, vecdot
from .taps import input_taps, stacked_input_taps

__all__ = ["weight_grad"]


def weight_grad(
    xp: Namespace,
    delta: Array,
    x: Array,
    geometry: Conv1dGeometry,
    plan: Plan,
    *,
    scale: float = 1.0,
) -> Array:
    """``scale * sum_{n,l} delta[n, o, l] conj(x_pad[n, g C_g + i, l s + k d])``, ``(O, C_g, K)``.

    ``delta`` is batched and in the working dtype; ``x`` is batched and cast
    block by block.

    Why it equals the textbook: the textbook correlates the padded input
    with ``delta`` as the kernel (taps ``s`` apart, stepping by ``d``); that
    is, for each tap ``k``, the sum over ``(n, l)`` of ``delta`` times the
    tap's column of the padded input, which
    :func:`~uscale_ref.kernels.taps.input_taps` cuts block by block (zeros in
    the padding, multiplied like the textbook's). The blocks and batch
    chunks split the sum over ``(n, l)``; their partial sums are added.
    """
    groups, out_channels = geometry.groups, geometry.out_channels
    out_per_group, fan_in, kernel_size = (
        out_channels // groups,
        geometry.fan_in,
        geometry.kernel_size,
    )
    broadcast = plan.path == "broadcast"

    def block(n0: int, n1: int, l0: int, l1: int) -> Array:
        gradient = xp.reshape(delta[n0:n1, :, l0:l1], (n1 - n0, groups, out_per_group, l1 - l0))
        if plan.path == "stacked":
            rows = x[n0:n1, ...]
            columns = stacked_input_taps(xp, rows, geometry, l0, l1 - l0, delta.dtype, True)
            product = matmul(xp, gradient, xp.permute_dims(columns, (0, 1, 3, 2)))
            return xp.reshape(xp.sum(product, axis=0), (groups, out_per_group, fan_in, kernel_size))
        # vecdot conjugates its first argument itself; the products need conj(x) given.
        taps = input_taps(xp, x[n0:n1, ...], geometry, l0, l1 - l0, delta.dtype, not broadcast)
        per_tap = []
        for tap in taps:
            if broadcast:
                product = vecdot(xp, tap[:, :, None, :, :], gradient[:, :, :, None, :])
            else:
                product = matmul(xp, gradient, xp.permute_dims(tap, (0, 1, 3, 2)))
            per_tap.append(xp.sum(product, axis=0))  # (G, O_g, C_g)
        return xp.stack(per_tap, axis=-1)

    total = sum_blocks(xp, plan, block, geometry.batch_size, geometry.out_length)
    grad_weight = xp.reshape(total, (out_channels, fan_in, kernel_size))
    return grad_weight * scale if scale != 1.0 else grad_weight
