"""The public, unit-scaled ``conv1d`` and its explicit backward ``conv1d_backward``."""

from __future__ import annotations

from collections.abc import Sequence

from . import kernels
from ._backend import Array, ieee_quiet
from ._calls import Conv1dGrads, backward_call, forward_call
from .scales import scales_for_geometry

__all__ = ["Conv1dGrads", "conv1d", "conv1d_backward"]


@ieee_quiet
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
    """Unit-scaled 1-D convolution, the forward pass of ``unit_scaling.functional.conv1d``.

    Parameters
    ----------
    input : array, shape (N, C, L) or (C, L)
        Any Array API array of dtype float16, float32, float64, complex64 or
        complex128, or bfloat16 and complex32 where the library has them
        (torch; NumPy bfloat16 with ``ml_dtypes``).
    weight : array, shape (C_out, C / groups, K)
        Same library, dtype and device as ``input``.
    bias : array, shape (C_out,), optional
        Same dtype and device; it is added *before* the output scale.
    stride : int or tuple of one int
        Step between output positions, at least 1.
    padding : int, tuple of one int, ``"valid"`` or ``"same"``
        Zeros on both sides of the input. ``"same"`` pads
        ``dilation * (K - 1)`` in total, the odd element on the right, and
        needs ``stride == 1``.
    dilation : int or tuple of one int
        Spacing of the kernel taps, at least 1.
    groups : int
        Number of channel groups, dividing ``C`` and ``C_out``.
    constraint : str or None
        Applied to (output scale, grad_input scale): ``None``/``""``,
        ``"gmean"``, ``"hmean"``, ``"amean"``, ``"to_output_scale"`` (the
        default, which is what upstream runs; its docstring says gmean) or
        ``"to_grad_input_scale"``.
    scale_power : tuple of three floats
        Powers for the (output, grad_input, grad_weight/grad_bias) scales.

    Returns
    -------
    array, shape (N, C_out, L_out) or (C_out, L_out)
        Same library, device and dtype as ``input``.

    Raises
    ------
    TypeError
        Non-arrays, mixed libraries, non-floating or mixed dtypes, arguments
        of the wrong type.
    ValueError
        Bad shapes, ranks, group counts, paddings, strides, dilations, an
        empty batch or output, an unknown constraint, devices that differ.

    See Also
    --------
    conv1d_backward : the matching explicit backward pass.
    conv1d_scales : the scales applied.

    Notes
    -----
    .. math::

        y[n, o, l] = \\alpha_y \\Big( b[o] + \\sum_{i, k} w[o, i, k]\\,
        x_\\text{pad}[n, g C_g + i,\\; l s + k d] \\Big),
        \\qquad \\alpha_y = (C_g K)^{-p_y}

    (before the constraint; see :func:`uscale_ref.conv1d_scales`). float16
    arrays are accumulated in float32 and rounded once.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(1, 2, 4)
    >>> w = np.ones((1, 2, 2))
    >>> conv1d(x, w)   # sums of 4 numbers, scaled by 1 / sqrt(2 * 2)
    array([[[5., 7., 9.]]])
    """
    call = forward_call(
        input, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    scales = scales_for_geometry(call.geometry, constraint, scale_power)
    weight = call.work(weight)
    plan = kernels.plan_for("forward", call.xp, call.geometry, weight.dtype, like=weight)
    output = kernels.forward(
        call.xp, call.batched(input), weight, call.geometry, plan,
        bias=None if bias is None else call.work(bias), scale=scales.output,
    )  # fmt: skip
    return call.result(output)


@ieee_quiet
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
    """Explicit backward pass of :func:`conv1d`: dgrad, wgrad and the bias sum.

    Gives what PyTorch autograd gives for ``unit_scaling.functional.conv1d``
    when ``output.backward(grad_output)`` is called, without any autograd.

    Parameters
    ----------
    grad_output : array, shape of conv1d's output
        Gradient of a real loss with respect to the output; same dtype and
        device as ``input``.
    input, weight, bias
        The forward pass's arrays (``bias`` may be ``None``).
    stride, padding, dilation, groups, constraint, scale_power
        The forward pass's arguments (keyword only).

    Returns
    -------
    Conv1dGrads
        ``(grad_input, grad_weight, grad_bias)``, shaped like ``input``,
        ``weight`` and ``bias``; ``grad_bias`` is ``None`` without bias.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv1d`, and for a ``grad_output`` whose shape, dtype or
        device does not match the output.

    Notes
    -----
    The forward-only output scale has an identity backward, so the incoming
    gradient :math:`\\delta` reaches the sums unscaled:

    .. math::

        \\nabla_x &= \\alpha_x \\sum_{j, k, l:\\, l s + k d = t + p_l}
                   \\overline{w[g O_g + j, i, k]}\\, \\delta[n, g O_g + j, l] \\\\
        \\nabla_w &= \\alpha_w \\sum_{n, l} \\delta[n, o, l]\\,
                   \\overline{x_\\text{pad}[n, g C_g + i, l s + k d]} \\\\
        \\nabla_b &= \\alpha_b \\sum_{n, l} \\delta[n, o, l]

    The bars are complex conjugates: PyTorch's conjugate Wirtinger convention.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(8.0).reshape(1, 2, 4)
    >>> w = np.ones((1, 2, 2))
    >>> grads = conv1d_backward(np.ones((1, 1, 3)), x, w, np.zeros(1), constraint=None)
    >>> grads.grad_bias   # (1 + 1 + 1) / sqrt(N * L_out) = 3 / sqrt(3)
    array([1.73205081])
    """
    call = backward_call(
        grad_output, input, weight, bias,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip
    scales = scales_for_geometry(call.geometry, constraint, scale_power)
    xp, geometry = call.xp, call.geometry
    delta = call.work(grad_output, batch_axis=True)

    # wgrad first: its result is small, so dgrad's large result is not held
    # while wgrad allocates its blocks (measured 6.3 -> 5.1 ms on the grouped
    # benchmark shape).
    plan = kernels.plan_for("weight_grad", xp, geometry, delta.dtype, like=delta)
    grad_weight = kernels.weight_grad(
        xp, delta, call.batched(input), geometry, plan, scale=scales.grad_weight
    )
    plan = kernels.plan_for("input_grad", xp, geometry, delta.dtype, like=delta)
    grad_input = kernels.input_grad(
        xp, delta, call.work(weight), geometry, plan, scale=scales.grad_input
    )
    grad_bias = None
    if bias is not None:
        grad_bias = call.result(xp.sum(delta, axis=(0, 2)) * scales.grad_bias, batch_axis=False)
    return Conv1dGrads(
        grad_input=call.result(grad_input),
        grad_weight=call.result(grad_weight, batch_axis=False),
        grad_bias=grad_bias,
    )
