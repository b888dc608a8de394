"""The unscaled primitives: forward correlation, dgrad and wgrad.

These are the three sums a 1-D convolution layer is made of. Channel indices
are split by group: input channel ``c = g C_g + i`` and output channel
``o = g O_g + j`` with ``C_g = C / G`` and ``O_g = O / G``; ``x_pad`` is the
input with :math:`p_l` zeros on the left and :math:`p_r` on the right.

forward
    .. math:: y[n, o, l] = \\sum_{i, k} w[o, i, k]\\; x_\\text{pad}[n, g C_g + i,\\; l s + k d]

dgrad (``grad_input``)
    .. math:: \\frac{\\partial\\mathcal L}{\\partial x}[n, c, t]
              = \\sum_{j, k, l \\,:\\, l s + k d = t + p_l}
                \\overline{w[g O_g + j, i, k]}\\; \\delta[n, g O_g + j, l]

    computed as a stride-1 correlation of the zero-inserted, padded output
    gradient with the flipped, conjugated, group-transposed kernel.

wgrad (``grad_weight``)
    .. math:: \\frac{\\partial\\mathcal L}{\\partial w}[o, i, k]
              = \\sum_{n, l} \\delta[n, o, l]\\;
                \\overline{x_\\text{pad}[n, g C_g + i,\\; l s + k d]}

The conjugates give PyTorch autograd's convention for complex arrays (the
conjugate Wirtinger derivative); for real arrays they do nothing.

All three loop over the ``K`` kernel taps and do one batched matrix product
per tap over the channels of a group, so no im2col copy of ``K`` times the
input is ever made. The public functions accept the same arguments as
:func:`uscale_ref.conv1d`; the ``*_padded`` functions are the arithmetic
itself, on batched arrays already in their working dtype.
"""

from __future__ import annotations

import array_api_extra as xpx

from ._backend import (
    Array,
    Namespace,
    check_arrays,
    conj_if_complex,
    device_of,
    from_work,
    to_work,
)
from .geometry import Conv1dGeometry, conv1d_geometry

__all__ = [
    "correlate",
    "correlate_input_grad",
    "correlate_weight_grad",
    "forward_padded",
    "input_grad_padded",
    "pad_input",
    "weight_grad_padded",
]


def _taps(x_pad: Array, start: int, count: int, step: int) -> Array:
    """``x_pad[..., start + step * l]`` for ``l = 0 .. count - 1``."""
    return x_pad[..., start : start + (count - 1) * step + 1 : step]


def _place(xp: Namespace, values: Array, length: int, start: int, step: int = 1) -> Array:
    """Zeros of last-axis ``length`` with ``values`` written at ``start, start + step, ...``."""
    shape = (*values.shape[:-1], length)
    zeros = xp.zeros(shape, dtype=values.dtype, device=device_of(values))
    where = (..., slice(start, start + (values.shape[-1] - 1) * step + 1, step))
    return xpx.at(zeros, where).set(values)


def pad_input(xp: Namespace, x: Array, pad_left: int, pad_right: int) -> Array:
    """``x`` with ``pad_left`` zeros before and ``pad_right`` zeros after, on the last axis."""
    if pad_left == 0 and pad_right == 0:
        return x
    return _place(xp, x, pad_left + x.shape[-1] + pad_right, pad_left)


def _correlate(
    xp: Namespace,
    x_pad: Array,
    weight: Array,
    *,
    stride: int,
    dilation: int,
    groups: int,
    out_length: int,
) -> Array:
    """The forward sum over an already padded batched input; see the module docstring."""
    batch = x_pad.shape[0]
    out_channels, fan_in, kernel_size = weight.shape
    out_per_group = out_channels // groups
    # (G, O_g, C_g, K): one (O_g x C_g) matrix per group and tap.
    weight_g = xp.reshape(weight, (groups, out_per_group, fan_in, kernel_size))
    output = xp.zeros(
        (batch, groups, out_per_group, out_length), dtype=x_pad.dtype, device=device_of(x_pad)
    )
    for k in range(kernel_size):
        taps = _taps(x_pad, k * dilation, out_length, stride)
        taps = xp.reshape(taps, (batch, groups, fan_in, out_length))
        if fan_in == 1:
            # Depthwise and channel-multiplier convolutions: a broadcast product
            # beats a batch of 1 x 1 matrix products.
            output = output + weight_g[..., k] * taps
        else:
            output = output + xp.matmul(weight_g[..., k], taps)
    return xp.reshape(output, (batch, out_channels, out_length))


def forward_padded(xp: Namespace, x_pad: Array, weight: Array, geometry: Conv1dGeometry) -> Array:
    """Forward correlation ``y`` of a padded ``(N, C, p_l + L + p_r)`` input, unscaled, no bias."""
    return _correlate(
        xp,
        x_pad,
        weight,
        stride=geometry.stride,
        dilation=geometry.dilation,
        groups=geometry.groups,
        out_length=geometry.out_length,
    )


def input_grad_padded(
    xp: Namespace, grad_output: Array, weight: Array, geometry: Conv1dGeometry
) -> Array:
    """dgrad: ``grad_input`` of shape ``(N, C, L)`` from ``grad_output``, unscaled.

    Output element ``l`` read the padded input at ``t' = l s + k d``. Spread
    ``grad_output`` onto that grid (stride ``s``, zeros between), then every
    padded input position ``t'`` gathers from the positions
    ``t' - k d``: a stride-1 correlation with the kernel reversed in ``k``,
    conjugated, and with the two channel axes of each group swapped. Only the
    unpadded positions ``t' = p_l .. p_l + L - 1`` are computed.
    """
    groups, kernel_size = geometry.groups, geometry.kernel_size
    span = geometry.dilation * (kernel_size - 1)
    # Zero-inserted gradient, with `span` zeros in front so that position t'
    # of the padded input sits at index t' + span; long enough on the right
    # for every position up to p_l + L - 1 to read K taps.
    spread = _place(
        xp, grad_output, geometry.padded_length + span, start=span, step=geometry.stride
    )
    out_channels, fan_in, _ = weight.shape
    out_per_group = out_channels // groups
    weight_t = xp.reshape(weight, (groups, out_per_group, fan_in, kernel_size))
    weight_t = xp.permute_dims(weight_t, (0, 2, 1, 3))  # (G, C_g, O_g, K)
    weight_t = xp.reshape(weight_t, (groups * fan_in, out_per_group, kernel_size))
    weight_t = conj_if_complex(xp, xp.flip(weight_t, axis=-1))
    return _correlate(
        xp,
        spread[..., geometry.pad_left :],
        weight_t,
        stride=1,
        dilation=geometry.dilation,
        groups=groups,
        out_length=geometry.in_length,
    )


def weight_grad_padded(
    xp: Namespace, grad_output: Array, x_pad: Array, geometry: Conv1dGeometry
) -> Array:
    """wgrad: ``grad_weight`` of shape ``(O, C / G, K)``, unscaled.

    For each tap ``k`` it correlates the input samples that tap read,
    ``x_pad[..., l s + k d]``, with the output gradient over batch and
    output position at once: one ``(O_g x N L_out) @ (N L_out x C_g)``
    product per group.
    """
    batch, in_channels, _ = x_pad.shape
    groups, kernel_size, out_length = geometry.groups, geometry.kernel_size, geometry.out_length
    out_channels = grad_output.shape[1]
    out_per_group, fan_in = out_channels // groups, in_channels // groups
    # (G, O_g, N * L_out)
    delta = xp.reshape(grad_output, (batch, groups, out_per_group, out_length))
    delta = xp.reshape(
        xp.permute_dims(delta, (1, 2, 0, 3)), (groups, out_per_group, batch * out_length)
    )
    per_tap = []
    for k in range(kernel_size):
        taps = _taps(x_pad, k * geometry.dilation, out_length, geometry.stride)
        taps = xp.reshape(taps, (batch, groups, fan_in, out_length))
        # (G, N * L_out, C_g)
        taps = xp.reshape(xp.permute_dims(taps, (1, 0, 3, 2)), (groups, batch * out_length, fan_in))
        per_tap.append(xp.matmul(delta, conj_if_complex(xp, taps)))
    grad_weight = xp.stack(per_tap, axis=-1)  # (G, O_g, C_g, K)
    return xp.reshape(grad_weight, (out_channels, fan_in, kernel_size))


# --------------------------------------------------------------------------
# Public wrappers: checked arguments, batched or unbatched arrays, any dtype
# of the policy in uscale_ref._backend.


def _check_size(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")


def _grad_output_check(grad_output: Array, geometry: Conv1dGeometry) -> None:
    if tuple(grad_output.shape) != geometry.output_shape:
        raise ValueError(
            f"grad_output must have the output's shape {geometry.output_shape}, "
            f"got {tuple(grad_output.shape)}"
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
    """Unscaled, bias-free 1-D cross-correlation (what deep learning calls convolution).

    Parameters
    ----------
    input : array, shape (N, C, L) or (C, L)
    weight : array, shape (O, C / groups, K)
    stride, padding, dilation, groups
        As for :func:`uscale_ref.conv1d`.

    Returns
    -------
    array, shape (N, O, L_out) or (O, L_out)

    Notes
    -----
    .. math:: y[n, o, l] = \\sum_{i=0}^{C_g - 1} \\sum_{k=0}^{K-1} w[o, i, k]\\;
              x_\\text{pad}[n, g C_g + i,\\; l s + k d], \\qquad g = \\lfloor o / O_g \\rfloor .

    Examples
    --------
    >>> import numpy as np
    >>> correlate(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[[1.0, -1.0]]]))
    array([[-1., -1., -1.]])
    """
    xp = check_arrays(input=input, weight=weight)
    geometry = conv1d_geometry(
        input.shape, weight.shape, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    x = to_work(xp, input, add_batch_axis=not geometry.batched)
    x_pad = pad_input(xp, x, geometry.pad_left, geometry.pad_right)
    y = forward_padded(xp, x_pad, to_work(xp, weight), geometry)
    return from_work(xp, y, input.dtype, drop_batch_axis=not geometry.batched)


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
    """Unscaled dgrad: the vector-Jacobian product of :func:`correlate` with respect to input.

    Parameters
    ----------
    grad_output : array, shape (N, O, L_out) or (O, L_out)
        Gradient of a real loss with respect to the correlation's output.
    weight : array, shape (O, C / groups, K)
    input_length : int
        ``L``. Needed because, with ``stride > 1``, several input lengths give
        the same ``L_out`` (the output-length ambiguity of a transposed
        convolution).
    batched : bool
        Whether ``grad_output`` has a batch axis (default True).
    stride, padding, dilation, groups
        As for :func:`uscale_ref.conv1d`.

    Returns
    -------
    array, shape (N, C, L) or (C, L)

    Notes
    -----
    .. math:: \\frac{\\partial\\mathcal L}{\\partial x}[n, g C_g + i, t] =
              \\sum_{j, k, l \\,:\\, l s + k d = t + p_l}
              \\overline{w[g O_g + j, i, k]}\\; \\delta[n, g O_g + j, l]

    Examples
    --------
    >>> import numpy as np
    >>> correlate_input_grad(np.array([[1.0, 0.0, 0.0]]), np.array([[[1.0, -1.0]]]),
    ...                      input_length=4, batched=False)
    array([[ 1., -1.,  0.,  0.]])
    """
    xp = check_arrays(grad_output=grad_output, weight=weight)
    _check_size("input_length", input_length)
    if grad_output.ndim not in (2, 3):
        raise ValueError(
            f"grad_output must have 2 or 3 dimensions, got shape {tuple(grad_output.shape)}"
        )
    batch = (grad_output.shape[0],) if batched else ()
    in_channels = weight.shape[1] * groups if isinstance(groups, int) else weight.shape[1]
    geometry = conv1d_geometry(
        (*batch, in_channels, input_length),
        weight.shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    _grad_output_check(grad_output, geometry)
    delta = to_work(xp, grad_output, add_batch_axis=not batched)
    grad_input = input_grad_padded(xp, delta, to_work(xp, weight), geometry)
    return from_work(xp, grad_input, weight.dtype, drop_batch_axis=not batched)


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
    """Unscaled wgrad: the vector-Jacobian product of :func:`correlate` with respect to weight.

    Parameters
    ----------
    grad_output : array, shape (N, O, L_out) or (O, L_out)
    input : array, shape (N, C, L) or (C, L)
    kernel_size : int
        ``K``; with ``stride > 1`` it is not implied by the other shapes.
    stride, padding, dilation, groups
        As for :func:`uscale_ref.conv1d`.

    Returns
    -------
    array, shape (O, C / groups, K)

    Notes
    -----
    .. math:: \\frac{\\partial\\mathcal L}{\\partial w}[o, i, k] =
              \\sum_{n, l} \\delta[n, o, l]\\;
              \\overline{x_\\text{pad}[n, g C_g + i,\\; l s + k d]}

    Examples
    --------
    >>> import numpy as np
    >>> correlate_weight_grad(np.array([[1.0, 0.0, 0.0]]), np.array([[1.0, 2.0, 3.0, 4.0]]),
    ...                       kernel_size=2)
    array([[[1., 2.]]])
    """
    xp = check_arrays(grad_output=grad_output, input=input)
    _check_size("kernel_size", kernel_size)
    if grad_output.ndim != input.ndim:
        raise ValueError(
            f"grad_output and input must both be batched or both unbatched, got shapes "
            f"{tuple(grad_output.shape)} and {tuple(input.shape)}"
        )
    in_channels = input.shape[-2]
    fan_in = in_channels // groups if isinstance(groups, int) and groups > 0 else in_channels
    geometry = conv1d_geometry(
        input.shape,
        (grad_output.shape[-2], fan_in, kernel_size),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    _grad_output_check(grad_output, geometry)
    x = to_work(xp, input, add_batch_axis=not geometry.batched)
    x_pad = pad_input(xp, x, geometry.pad_left, geometry.pad_right)
    delta = to_work(xp, grad_output, add_batch_axis=not geometry.batched)
    grad_weight = weight_grad_padded(xp, delta, x_pad, geometry)
    return from_work(xp, grad_weight, input.dtype)
