"""The unit-scaled conv1d and its gradients as the derivations write them: plain, slow, exact.

Each function here is one formula of :doc:`/derivations`, written with the
Array API and nothing else: no blocks, no thresholds, no workspace. It is
what :func:`uscale_ref.conv1d` and :func:`uscale_ref.conv1d_backward` must
equal: their fast kernels (:mod:`uscale_ref.kernels`) are tested against
these functions on every path they take, NaN and inf included. Read it to
learn the op; call it to check something by a second route.

It is not the fast way. The correlations multiply and sum whole arrays of
products, and :func:`zero_insert` builds the spread-out gradient, so memory
grows with the stride; use the public functions for real sizes.

======================================  =====================================
formula                                 function
======================================  =====================================
output length                           :func:`output_length`
padding                                 :func:`pad`
zero insertion (stride in dgrad)        :func:`zero_insert`
flipped, conjugated, group-transposed   :func:`transposed_kernel`
the correlation all three sums share    :func:`cross_correlation`
forward                                 :func:`forward_sum`
dgrad                                   :func:`input_grad`
wgrad                                   :func:`weight_grad`
bias gradient                           :func:`bias_grad`
the scales                              :func:`output_scale`,
                                        :func:`grad_input_scale`,
                                        :func:`grad_weight_scale`,
                                        :func:`~uscale_ref.constraints.apply_constraint`
======================================  =====================================

:func:`conv1d`, :func:`conv1d_backward`, :func:`correlate`,
:func:`correlate_input_grad` and :func:`correlate_weight_grad` have the
public functions' signatures and argument checks (the same code checks
both), so a test can swap one for the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import array_api_compat

from ._backend import Array, conj_if_complex, device_of
from ._calls import (
    Conv1dGrads,
    backward_call,
    correlate_call,
    forward_call,
    input_grad_call,
    weight_grad_call,
)
from .constraints import apply_constraint
from .geometry import Conv1dGeometry, output_length
from .scales import grad_input_scale, grad_weight_scale, output_scale, scales_for_geometry

__all__ = [
    "apply_constraint",
    "bias_grad",
    "conv1d",
    "conv1d_backward",
    "correlate",
    "correlate_input_grad",
    "correlate_weight_grad",
    "cross_correlation",
    "forward_sum",
    "grad_input_scale",
    "grad_weight_scale",
    "input_grad",
    "output_length",
    "output_scale",
    "pad",
    "transposed_kernel",
    "weight_grad",
    "zero_insert",
]


def _zeros(a: Array, length: int) -> Array:
    """Zeros shaped like ``a`` but ``length`` long on the last axis."""
    xp = array_api_compat.array_namespace(a)
    return xp.zeros((*a.shape[:-1], length), dtype=a.dtype, device=device_of(a))


def pad(a: Array, left: int, right: int) -> Array:
    """``left`` zeros before and ``right`` zeros after the last axis; a negative amount crops.

    The result is ``L + left + right`` long.

    .. math:: a_\\text{pad}[t'] = a[t' - p_l] \\text{ if } 0 \\le t' - p_l < L
              \\text{, else } 0

    See :ref:`derivation-padding`.

    >>> import numpy as np
    >>> pad(np.array([1.0, 2.0, 3.0]), 2, -1)
    array([0., 0., 1., 2.])
    """
    xp = array_api_compat.array_namespace(a)
    size = a.shape[-1] + left + right
    first, last = max(0, -left), min(a.shape[-1], size - left)  # a[first:last] lands inside
    kept = a[..., first : max(first, last)]
    before = min(size, max(0, left))
    after = size - before - kept.shape[-1]
    return xp.concat([_zeros(a, before), kept, _zeros(a, after)], axis=-1)


def zero_insert(a: Array, stride: int) -> Array:
    """``stride - 1`` zeros between neighbours on the last axis: ``z[l s] = a[l]``.

    .. math:: z[u] = a[u / s] \\text{ if } s \\mid u \\text{, else } 0,
              \\qquad 0 \\le u \\le (L - 1) s

    See :ref:`derivation-dgrad`.

    >>> import numpy as np
    >>> zero_insert(np.array([1.0, 2.0, 3.0]), 2)
    array([1., 0., 2., 0., 3.])
    """
    xp = array_api_compat.array_namespace(a)
    length = a.shape[-1]
    spread = xp.stack([a, *[_zeros(a, length)] * (stride - 1)], axis=-1)  # (..., L, s)
    return xp.reshape(spread, (*a.shape[:-1], length * stride))[..., : (length - 1) * stride + 1]


def transposed_kernel(weight: Array, groups: int) -> Array:
    """Flipped, conjugated and group-transposed: the kernel of dgrad, shape ``(C, O / G, K)``.

    .. math:: w^\\top[g C_g + i, j, k] = \\overline{w[g O_g + j, i, K - 1 - k]}

    See :ref:`derivation-dgrad`.
    """
    xp = array_api_compat.array_namespace(weight)
    out_channels, fan_in, kernel_size = weight.shape
    per_group = xp.reshape(weight, (groups, out_channels // groups, fan_in, kernel_size))
    swapped = xp.permute_dims(per_group, (0, 2, 1, 3))  # i and j change roles in each group
    stacked = xp.reshape(swapped, (groups * fan_in, out_channels // groups, kernel_size))
    return conj_if_complex(xp, xp.flip(stacked, axis=-1))


def cross_correlation(
    z: Array,
    kernel: Array,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    present: Array | None = None,
) -> Array:
    """The grouped correlation every sum here is: ``(N, C, S)`` with ``(O, C / G, K)``.

    .. math:: y[n, o, l] = \\sum_{i=0}^{C_g - 1} \\sum_{k=0}^{K - 1} h[o, i, k]\\;
              z[n, g C_g + i,\\; l s + k d], \\qquad g = \\lfloor o / O_g \\rfloor,

    for every ``l`` whose window fits: ``L_out = floor((S - d (K - 1) - 1) / s) + 1``.
    Where the boolean ``present`` (length ``S``) is False, ``z`` holds a
    placeholder zero, not a value: its products are left out, whatever the
    kernel holds there (``0 * inf`` would be NaN). See :ref:`derivation-forward`.
    """
    xp = array_api_compat.array_namespace(z, kernel)
    batch, _, length = z.shape
    out_channels, fan_in, kernel_size = kernel.shape
    out_length = (length - dilation * (kernel_size - 1) - 1) // stride + 1
    data = xp.reshape(z, (batch, groups, 1, fan_in, length))
    taps = xp.reshape(kernel, (1, groups, out_channels // groups, fan_in, kernel_size))
    total = xp.zeros(
        (batch, groups, out_channels // groups, out_length), dtype=z.dtype, device=device_of(z)
    )
    for k in range(kernel_size):
        window = slice(k * dilation, k * dilation + (out_length - 1) * stride + 1, stride)
        products = taps[..., k : k + 1] * data[..., window]  # (N, G, O_g, C_g, L_out)
        if present is not None:
            products = xp.where(present[window], products, xp.zeros_like(products))
        total = total + xp.sum(products, axis=3)
    return xp.reshape(total, (batch, out_channels, out_length))


def forward_sum(x: Array, weight: Array, geometry: Conv1dGeometry) -> Array:
    """The unscaled forward sum: the padded input correlated with the weight.

    .. math:: y[n, o, l] = \\sum_{i, k} w[o, i, k]\\; x_\\text{pad}[n, g C_g + i,\\; l s + k d]

    The padding zeros are values: PyTorch multiplies them too, so an inf
    weight facing the padding gives NaN. See :ref:`derivation-forward`.
    """
    x_pad = pad(x, geometry.pad_left, geometry.pad_right)
    return cross_correlation(x_pad, weight, geometry.stride, geometry.dilation, geometry.groups)


def input_grad(delta: Array, weight: Array, geometry: Conv1dGeometry) -> Array:
    """dgrad: the zero-inserted, padded gradient correlated (stride 1) with the transposed kernel.

    .. math:: \\frac{\\partial \\mathcal L}{\\partial x}[n, c, t] = \\sum_{o', k}
              w^\\top[c, o', k]\\; z[n, g O_g + o',\\; t + k d], \\qquad
              z = \\operatorname{pad}_{D - p_l}(\\operatorname{zero\\_insert}_s(\\delta)),
              \\quad D = d (K - 1)

    The inserted and padding zeros of ``z`` are placeholders: the sum has
    a term only where ``z`` holds a ``delta[l]`` (as PyTorch's dgrad).
    See :ref:`derivation-dgrad`.
    """
    xp = array_api_compat.array_namespace(delta, weight)
    stride, span = geometry.stride, geometry.dilation * (geometry.kernel_size - 1)
    left = span - geometry.pad_left
    right = geometry.in_length + span - left - ((geometry.out_length - 1) * stride + 1)
    z = pad(zero_insert(delta, stride), left, right)
    ones = xp.ones(geometry.out_length, dtype=delta.dtype, device=device_of(delta))
    present = pad(zero_insert(ones, stride), left, right) != 0
    kernel = transposed_kernel(weight, geometry.groups)
    return cross_correlation(z, kernel, 1, geometry.dilation, geometry.groups, present)


def weight_grad(delta: Array, x: Array, geometry: Conv1dGeometry) -> Array:
    """wgrad: per group, the conjugated padded input correlated with ``delta`` as the kernel.

    .. math:: \\frac{\\partial \\mathcal L}{\\partial w}[o, i, k] = \\sum_{n, l}
              \\delta[n, o, l]\\; \\overline{x_\\text{pad}[n, g C_g + i,\\; k d + l s]}

    Stride and dilation swap roles: the kernel's taps (``l``) are ``s`` apart
    and the output (``k``) steps by ``d``; the batch is the channel sum.
    See :ref:`derivation-wgrad`.
    """
    xp = array_api_compat.array_namespace(delta, x)
    stride, dilation, groups = geometry.stride, geometry.dilation, geometry.groups
    read = (geometry.kernel_size - 1) * dilation + (geometry.out_length - 1) * stride + 1
    x_pad = conj_if_complex(xp, pad(x, geometry.pad_left, geometry.pad_right))[..., :read]
    fan_in, out_per_group = geometry.fan_in, geometry.out_channels // groups
    per_group = []
    for g in range(groups):
        data = xp.permute_dims(x_pad[:, g * fan_in : (g + 1) * fan_in, :], (1, 0, 2))
        taps = xp.permute_dims(delta[:, g * out_per_group : (g + 1) * out_per_group, :], (1, 0, 2))
        grads = cross_correlation(data, taps, stride=dilation, dilation=stride)  # (C_g, O_g, K)
        per_group.append(xp.permute_dims(grads, (1, 0, 2)))
    return xp.concat(per_group, axis=0)


def bias_grad(delta: Array) -> Array:
    """The bias gradient: ``delta`` summed over batch and length.

    .. math:: \\frac{\\partial \\mathcal L}{\\partial b}[o] = \\sum_{n, l} \\delta[n, o, l]

    See :ref:`derivation-bias`.
    """
    xp = array_api_compat.array_namespace(delta)
    return xp.sum(delta, axis=(0, 2))


def conv1d(
    input: Array,
    weight: Array,
    bias: Array | None = None,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    constraint: str | None = "to_output_scale",
    scale_power: Sequence[float] = (0.5, 0.5, 0.5),
) -> Array:
    """:func:`uscale_ref.conv1d` from the textbook: ``alpha_y (forward_sum + b)``.

    >>> import numpy as np
    >>> conv1d(np.arange(8.0).reshape(1, 2, 4), np.ones((1, 2, 2)))
    array([[[5., 7., 9.]]])
    """
    call = forward_call(
        input, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    scales = scales_for_geometry(call.geometry, constraint, scale_power)
    y = forward_sum(call.work(input, batch_axis=True), call.work(weight), call.geometry)
    if bias is not None:
        y = y + call.xp.expand_dims(call.work(bias), axis=-1)
    return call.result(scales.output * y)


def conv1d_backward(
    grad_output: Array,
    input: Array,
    weight: Array,
    bias: Array | None = None,
    *,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    constraint: str | None = "to_output_scale",
    scale_power: Sequence[float] = (0.5, 0.5, 0.5),
) -> Conv1dGrads:
    """:func:`uscale_ref.conv1d_backward` from the textbook: each gradient times its scale.

    >>> import numpy as np
    >>> x, w = np.arange(8.0).reshape(1, 2, 4), np.ones((1, 2, 2))
    >>> conv1d_backward(np.ones((1, 1, 3)), x, w, np.zeros(1), constraint=None).grad_bias
    array([1.73205081])
    """
    call = backward_call(
        grad_output, input, weight, bias,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip
    scales = scales_for_geometry(call.geometry, constraint, scale_power)
    delta = call.work(grad_output, batch_axis=True)
    x, w = call.work(input, batch_axis=True), call.work(weight)
    grad_bias = None
    if bias is not None:
        grad_bias = call.result(scales.grad_bias * bias_grad(delta), batch_axis=False)
    return Conv1dGrads(
        grad_input=call.result(scales.grad_input * input_grad(delta, w, call.geometry)),
        grad_weight=call.result(
            scales.grad_weight * weight_grad(delta, x, call.geometry), batch_axis=False
        ),
        grad_bias=grad_bias,
    )


def correlate(
    input: Array,
    weight: Array,
    *,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> Array:
    """:func:`uscale_ref.correlate` from the textbook: :func:`forward_sum`, unscaled."""
    call = correlate_call(
        input, weight, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return call.result(
        forward_sum(call.work(input, batch_axis=True), call.work(weight), call.geometry)
    )


def correlate_input_grad(
    grad_output: Array,
    weight: Array,
    *,
    input_length: int,
    batched: bool = True,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> Array:
    """:func:`uscale_ref.correlate_input_grad` from the textbook: :func:`input_grad`, unscaled."""
    call = input_grad_call(
        grad_output, weight, input_length, batched,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip
    delta = call.work(grad_output, batch_axis=True)
    return call.result(input_grad(delta, call.work(weight), call.geometry))


def correlate_weight_grad(
    grad_output: Array,
    input: Array,
    *,
    kernel_size: int,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> Array:
    """:func:`uscale_ref.correlate_weight_grad` from the textbook: :func:`weight_grad`, unscaled."""
    call = weight_grad_call(
        grad_output, input, kernel_size,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip
    delta, x = call.work(grad_output, batch_axis=True), call.work(input, batch_axis=True)
    return call.result(weight_grad(delta, x, call.geometry), batch_axis=False)
