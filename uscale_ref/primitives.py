"""The unscaled primitives: forward correlation, dgrad and wgrad, on their own.

These are the three sums a 1-D convolution layer is made of, without bias
or scales, taking the same argument forms as :func:`uscale_ref.conv1d`.
Channel indices are split by group: input channel ``c = g C_g + i`` and
output channel ``o = g O_g + j`` with ``C_g = C / G`` and ``O_g = O / G``;
``x_pad`` is the input with :math:`p_l` zeros on the left and :math:`p_r` on
the right.

forward
    .. math:: y[n, o, l] = \\sum_{i, k} w[o, i, k]\\; x_\\text{pad}[n, g C_g + i,\\; l s + k d]

dgrad (``grad_input``)
    .. math:: \\frac{\\partial\\mathcal L}{\\partial x}[n, c, t]
              = \\sum_{j, k, l \\,:\\, l s + k d = t + p_l}
                \\overline{w[g O_g + j, i, k]}\\; \\delta[n, g O_g + j, l]

wgrad (``grad_weight``)
    .. math:: \\frac{\\partial\\mathcal L}{\\partial w}[o, i, k]
              = \\sum_{n, l} \\delta[n, o, l]\\;
                \\overline{x_\\text{pad}[n, g C_g + i,\\; l s + k d]}

Each equals its function in :mod:`uscale_ref.textbook` (where the sums are
written as the correlations they are); the arithmetic runs in
:mod:`uscale_ref.kernels`.
"""

from __future__ import annotations

from . import kernels
from ._backend import Array, ieee_quiet
from ._calls import correlate_call, input_grad_call, weight_grad_call

__all__ = ["correlate", "correlate_input_grad", "correlate_weight_grad"]


@ieee_quiet
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
    call = correlate_call(
        input, weight, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    weight = call.work(weight)
    plan = kernels.plan_for("forward", call.xp, call.geometry, weight.dtype, like=weight)
    return call.result(kernels.forward(call.xp, call.batched(input), weight, call.geometry, plan))


@ieee_quiet
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
    call = input_grad_call(
        grad_output, weight, input_length, batched,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip
    delta = call.work(grad_output, batch_axis=True)
    plan = kernels.plan_for("input_grad", call.xp, call.geometry, delta.dtype, like=delta)
    return call.result(kernels.input_grad(call.xp, delta, call.work(weight), call.geometry, plan))


@ieee_quiet
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
    call = weight_grad_call(
        grad_output, input, kernel_size,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip
    delta = call.work(grad_output, batch_axis=True)
    plan = kernels.plan_for("weight_grad", call.xp, call.geometry, delta.dtype, like=delta)
    grad_weight = kernels.weight_grad(call.xp, delta, call.batched(input), call.geometry, plan)
    return call.result(grad_weight, batch_axis=False)
