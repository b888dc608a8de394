"""The four scale factors of a unit-scaled 1-D convolution.

With ``fan_out, fan_in, K = weight.shape`` (``fan_in = C / groups``), output
length :math:`L_\\text{out}`, batch :math:`B = N L_\\text{out}` (just
:math:`L_\\text{out}` for unbatched input) and powers
:math:`(p_y, p_x, p_w)` = ``scale_power``:

.. math::

    \\alpha_y = \\frac{1}{(\\text{fan\\_in}\\, K)^{p_y}}, \\qquad
    \\alpha_x = \\left(\\frac{s\\, G}{\\text{fan\\_out}\\, K}\\right)^{p_x}, \\qquad
    \\alpha_w = \\alpha_b = \\frac{1}{B^{p_w}} .

The constraint then replaces the pair :math:`(\\alpha_y, \\alpha_x)` by one
chosen value; :math:`\\alpha_w` and :math:`\\alpha_b` are never constrained.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Sequence
from typing import NamedTuple

from .constraints import apply_constraint, check_constraint
from .geometry import Conv1dGeometry, conv1d_geometry

__all__ = [
    "Conv1dScales",
    "conv1d_scales",
    "grad_input_scale",
    "grad_weight_scale",
    "output_scale",
    "scales_for_geometry",
]


class Conv1dScales(NamedTuple):
    """The scales a unit-scaled conv1d applies, after its constraint."""

    output: float
    grad_input: float
    grad_weight: float
    grad_bias: float


def check_scale_power(scale_power: object) -> tuple[float, float, float]:
    """Return ``scale_power`` as three finite floats, or raise naming the problem."""
    if isinstance(scale_power, (str, bytes)) or not isinstance(scale_power, Sequence):
        raise TypeError(
            "scale_power must be a sequence of three real numbers "
            f"(output, grad_input, grad_weight), got {type(scale_power).__name__}"
        )
    if len(scale_power) != 3:
        raise ValueError(
            "scale_power must have three entries (output, grad_input, grad_weight), "
            f"got {len(scale_power)}: {tuple(scale_power)!r}"
        )
    powers = []
    for entry in scale_power:
        if isinstance(entry, bool) or not isinstance(entry, numbers.Real):
            raise TypeError(f"scale_power entries must be real numbers, got {entry!r}")
        value = float(entry)
        if not math.isfinite(value):
            raise ValueError(f"scale_power entries must be finite, got {tuple(scale_power)!r}")
        powers.append(value)
    return (powers[0], powers[1], powers[2])


def output_scale(geometry: Conv1dGeometry, power: float) -> float:
    """The forward scale before any constraint, :math:`\\alpha_y = 1 / (C_g K)^{p_y}`.

    See :ref:`derivation-scales`.
    """
    denominator = _power(geometry.fan_in * geometry.kernel_size, 1, power)
    if denominator == 0.0:
        raise ValueError(f"scale_power[0]={power!r} makes the output scale overflow")
    return 1.0 / denominator


def grad_input_scale(geometry: Conv1dGeometry, power: float) -> float:
    """The dgrad scale before any constraint, :math:`\\alpha_x = (s G / (O K))^{p_x}`.

    See :ref:`derivation-scales`.
    """
    scale = _power(
        geometry.stride * geometry.groups, geometry.fan_out * geometry.kernel_size, power
    )
    if math.isinf(scale):
        raise ValueError(
            f"scale_power[1]={power!r} with stride={geometry.stride} makes the grad_input "
            "scale overflow"
        )
    return scale


def grad_weight_scale(geometry: Conv1dGeometry, power: float) -> float:
    """The wgrad and bias scale, :math:`\\alpha_w = \\alpha_b = 1 / (N L_\\text{out})^{p_w}`.

    ``N`` counts 1 for unbatched input. See :ref:`derivation-scales`.
    """
    batch = geometry.out_length * (geometry.batch_size if geometry.batched else 1)
    denominator = _power(batch, 1, power)
    if denominator == 0.0:
        raise ValueError(f"scale_power[2]={power!r} makes the grad_weight scale overflow")
    return 1.0 / denominator


def _power(numerator: int, denominator: int, power: float) -> float:
    """``(numerator / denominator) ** power`` as upstream computes it, inf or 0 past float range.

    Python raises OverflowError where a float would be too large (a stride of
    2**1100, a power of 1000); the logarithm then says how large it is.
    """
    try:
        return float((numerator / denominator) ** power)
    except OverflowError:
        exponent = power * (math.log(numerator) - math.log(denominator))
        return math.inf if exponent > math.log(sys.float_info.max) else math.exp(exponent)


def scales_for_geometry(
    geometry: Conv1dGeometry,
    constraint: str | None = "to_output_scale",
    scale_power: Sequence[float] = (0.5, 0.5, 0.5),
) -> Conv1dScales:
    """The scales for an already resolved :class:`~uscale_ref.geometry.Conv1dGeometry`."""
    constraint = check_constraint(constraint)
    power_output, power_input, power_weight = check_scale_power(scale_power)
    forward, backward = apply_constraint(
        constraint, output_scale(geometry, power_output), grad_input_scale(geometry, power_input)
    )
    weight_scale = grad_weight_scale(geometry, power_weight)
    return Conv1dScales(forward, backward, weight_scale, weight_scale)


def conv1d_scales(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
    constraint: str | None = "to_output_scale",
    scale_power: Sequence[float] = (0.5, 0.5, 0.5),
) -> Conv1dScales:
    """The scales that :func:`uscale_ref.conv1d` applies, after the constraint.

    Parameters
    ----------
    input_shape : sequence of int
        ``(N, C, L)`` or unbatched ``(C, L)``.
    weight_shape : sequence of int
        ``(C_out, C / groups, K)``.
    stride, padding, dilation, groups
        As for :func:`uscale_ref.conv1d`.
    constraint : str or None
        One of ``None``, ``""``, ``"gmean"``, ``"hmean"``, ``"amean"``,
        ``"to_output_scale"``, ``"to_grad_input_scale"``.
    scale_power : tuple of three floats
        Powers :math:`(p_y, p_x, p_w)` for output, grad_input and
        grad_weight/grad_bias.

    Returns
    -------
    Conv1dScales
        ``(output, grad_input, grad_weight, grad_bias)``.

    Notes
    -----
    .. math::

        \\alpha_y = (\\text{fan\\_in}\\, K)^{-p_y},\\quad
        \\alpha_x = \\left(\\frac{s\\, G}{\\text{fan\\_out}\\, K}\\right)^{p_x},\\quad
        \\alpha_w = \\alpha_b = (N L_\\text{out})^{-p_w},

    then :math:`(\\alpha_y, \\alpha_x) \\leftarrow (c, c)` with
    :math:`c = \\text{constraint}(\\alpha_y, \\alpha_x)`.

    Examples
    --------
    >>> s = conv1d_scales((2, 4, 10), (8, 4, 3), constraint=None)
    >>> round(s.output, 6), round(s.grad_input, 6), round(s.grad_weight, 6)
    (0.288675, 0.204124, 0.25)
    >>> conv1d_scales((2, 4, 10), (8, 4, 3)).grad_input == s.output
    True
    """
    geometry = conv1d_geometry(
        input_shape, weight_shape, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    return scales_for_geometry(geometry, constraint, scale_power)
