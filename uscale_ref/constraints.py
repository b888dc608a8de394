"""Scale constraints: how one scale is chosen for a forward/backward pair.

A unit-scaled op computes an ideal scale for its output and another for the
gradient of its input. When the two must be equal (so that the op is a true
scaled linear map with its exact adjoint), a *constraint* picks one value to
replace both. The names and their meaning follow ``unit_scaling.constraints``.

===========================  ========================================
name                         chosen scale for ``(a, b)``
===========================  ========================================
``None`` or ``""``           no constraint, ``a`` and ``b`` unchanged
``"gmean"``                  :math:`\\sqrt{a b}`
``"hmean"``                  :math:`2 / (1/a + 1/b)`
``"amean"``                  :math:`(a + b) / 2`
``"to_output_scale"``        :math:`a`
``"to_grad_input_scale"``    :math:`b`
===========================  ========================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = [
    "CONSTRAINT_NAMES",
    "amean",
    "apply_constraint",
    "gmean",
    "hmean",
    "to_grad_input_scale",
    "to_output_scale",
]


def gmean(*scales: float) -> float:
    """Geometric mean of the scales, :math:`(\\prod_i s_i)^{1/n}`.

    Examples
    --------
    >>> gmean(0.25, 4.0)
    1.0
    """
    mean = math.prod(scales) ** (1.0 / len(scales))
    if (mean == 0.0 or math.isinf(mean)) and all(0.0 < s < math.inf for s in scales):
        # The product left float range although each scale is finite: go through logs.
        mean = math.exp(math.fsum(math.log(s) for s in scales) / len(scales))
    return mean


def hmean(*scales: float) -> float:
    """Harmonic mean of the scales, :math:`n / \\sum_i s_i^{-1}`; 0 if a scale is 0.

    (Not Glorot's rule: Glorot initialisation takes the harmonic mean of the
    fan-in and fan-out, i.e. of the *variances*, not of the scales.)

    Examples
    --------
    >>> hmean(1.0, 3.0)
    1.5
    """
    if any(s == 0.0 for s in scales):
        return 0.0  # the limit: one term 1/s grows without bound
    mean = len(scales) / sum(1.0 / s for s in scales)
    if mean == 0.0:  # some 1/s overflowed: scale every term by the smallest scale first
        smallest = min(scales)
        mean = len(scales) * smallest / sum(smallest / s for s in scales)
    return mean


def amean(*scales: float) -> float:
    """Arithmetic mean of the scales, :math:`\\frac{1}{n}\\sum_i s_i`.

    Examples
    --------
    >>> amean(1.0, 3.0)
    2.0
    """
    mean = sum(scales) / len(scales)
    if math.isinf(mean) and all(math.isfinite(s) for s in scales):
        mean = sum(s / len(scales) for s in scales)  # the sum overflowed, the mean need not
    return mean


def to_output_scale(output_scale: float, *grad_input_scales: float) -> float:
    """Keep the output's scale: the forward pass stays unit-scaled.

    Examples
    --------
    >>> to_output_scale(0.5, 2.0)
    0.5
    """
    return output_scale


def to_grad_input_scale(output_scale: float, grad_input_scale: float) -> float:
    """Keep the input gradient's scale: the backward pass stays unit-scaled.

    Examples
    --------
    >>> to_grad_input_scale(0.5, 2.0)
    2.0
    """
    return grad_input_scale


_CONSTRAINTS: dict[str, Callable[..., float]] = {
    "gmean": gmean,
    "hmean": hmean,
    "amean": amean,
    "to_output_scale": to_output_scale,
    "to_grad_input_scale": to_grad_input_scale,
}

#: Every accepted constraint name; ``None`` and ``""`` mean "no constraint".
CONSTRAINT_NAMES: tuple[str | None, ...] = (None, "", *_CONSTRAINTS)


def check_constraint(constraint: object) -> str | None:
    """Return ``constraint`` if it is an accepted name, else raise.

    Raises
    ------
    TypeError
        If ``constraint`` is neither ``None`` nor a string.
    ValueError
        If ``constraint`` is a string that is not one of the accepted names.
    """
    if constraint is None:
        return None
    if not isinstance(constraint, str):
        raise TypeError(f"constraint must be None or a string, got {type(constraint).__name__}")
    if constraint != "" and constraint not in _CONSTRAINTS:
        expected = ", ".join(repr(name) for name in CONSTRAINT_NAMES)
        raise ValueError(f"constraint must be one of {expected}; got {constraint!r}")
    return constraint


def apply_constraint(constraint: str | None, *scales: float) -> tuple[float, ...]:
    """Apply the named constraint to a group of scales.

    Parameters
    ----------
    constraint : str or None
        One of :data:`CONSTRAINT_NAMES`. ``None`` and ``""`` leave the scales
        as they are.
    *scales : float
        The group of scales to constrain, output scale first.

    Returns
    -------
    tuple of float
        As many scales as were given: all equal to the chosen value, or the
        scales unchanged when there is no constraint.

    Raises
    ------
    TypeError, ValueError
        For a constraint that is not an accepted name.

    Examples
    --------
    >>> apply_constraint("gmean", 0.25, 4.0)
    (1.0, 1.0)
    >>> apply_constraint(None, 0.25, 4.0)
    (0.25, 4.0)
    """
    name = check_constraint(constraint)
    if not name:
        return tuple(scales)
    chosen = _CONSTRAINTS[name](*scales)
    return tuple(chosen for _ in scales)
