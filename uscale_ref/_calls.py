"""What every public entry point does around its arithmetic, written once.

check the arrays → resolve the geometry → cast to the working dtype → (the
arithmetic) → round once to the caller's dtype. ``uscale_ref.conv1d`` and
friends run the kernels in the middle, ``uscale_ref.textbook`` runs the plain
definition; both call these functions, so both refuse exactly the same
arguments with exactly the same messages.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, NamedTuple

from ._backend import Array, Namespace, check_arrays, from_work, to_work
from .geometry import Conv1dGeometry, as_int, conv1d_geometry

__all__ = [
    "Call",
    "Conv1dGrads",
    "backward_call",
    "correlate_call",
    "forward_call",
    "input_grad_call",
    "weight_grad_call",
]


class Conv1dGrads(NamedTuple):
    """Gradients of a real loss with respect to conv1d's inputs.

    ``grad_bias`` is ``None`` when the convolution had no bias.
    """

    grad_input: Array
    grad_weight: Array
    grad_bias: Array | None


@dataclass(frozen=True)
class Call:
    """A checked call: the namespace, the geometry and the dtype results are rounded to."""

    xp: Namespace
    geometry: Conv1dGeometry
    dtype: Any

    def batched(self, a: Array) -> Array:
        """``a`` with a batch axis (added for unbatched calls), in its own dtype."""
        return a if self.geometry.batched else self.xp.expand_dims(a, axis=0)

    def work(self, a: Array, *, batch_axis: bool = False) -> Array:
        """``a`` in the working dtype, with a batch axis if asked and missing."""
        return to_work(self.xp, a, add_batch_axis=batch_axis and not self.geometry.batched)

    def result(self, a: Array, *, batch_axis: bool = True) -> Array:
        """``a`` rounded once to the caller's dtype, without the batch axis it was given."""
        drop = batch_axis and not self.geometry.batched
        return from_work(self.xp, a, self.dtype, drop_batch_axis=drop)


def _check_bias(bias: Array | None, geometry: Conv1dGeometry) -> None:
    if bias is not None and tuple(bias.shape) != (geometry.out_channels,):
        raise ValueError(
            f"bias must have shape (C_out,) = ({geometry.out_channels},), got {tuple(bias.shape)}"
        )


def _check_grad_output(grad_output: Array, geometry: Conv1dGeometry) -> None:
    if tuple(grad_output.shape) != geometry.output_shape:
        raise ValueError(
            f"grad_output must have the output's shape {geometry.output_shape}, "
            f"got {tuple(grad_output.shape)}"
        )


def _check_rank(name: str, a: Array) -> None:
    if a.ndim not in (2, 3):
        raise ValueError(
            f"{name} must have 2 or 3 dimensions ((N, C, L) or (C, L)), got shape {tuple(a.shape)}"
        )


def _size(name: str, value: object) -> int:
    """A size argument: an int (NumPy integers too), never a bool."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def forward_call(input: Array, weight: Array, bias: Array | None, **arguments: object) -> Call:
    """Check a forward call (``stride``, ``padding``, ``dilation``, ``groups`` as keywords)."""
    xp = check_arrays(input=input, weight=weight, bias=bias)
    geometry = conv1d_geometry(input.shape, weight.shape, **arguments)
    _check_bias(bias, geometry)
    return Call(xp, geometry, input.dtype)


def backward_call(
    grad_output: Array, input: Array, weight: Array, bias: Array | None, **arguments: object
) -> Call:
    """Check a backward call: the forward's checks and ``grad_output``'s shape."""
    xp = check_arrays(input=input, weight=weight, bias=bias, grad_output=grad_output)
    geometry = conv1d_geometry(input.shape, weight.shape, **arguments)
    _check_bias(bias, geometry)
    _check_grad_output(grad_output, geometry)
    return Call(xp, geometry, input.dtype)


def correlate_call(input: Array, weight: Array, **arguments: object) -> Call:
    """Check an unscaled forward correlation."""
    return forward_call(input, weight, None, **arguments)


def input_grad_call(
    grad_output: Array, weight: Array, input_length: object, batched: bool, **arguments: object
) -> Call:
    """Check an unscaled dgrad: the input's shape is implied by the arguments."""
    xp = check_arrays(grad_output=grad_output, weight=weight)
    length = _size("input_length", input_length)
    _check_rank("grad_output", grad_output)
    if weight.ndim != 3:
        raise ValueError(f"weight must have 3 dimensions (C_out, C / groups, K), got {weight.ndim}")
    groups = as_int("groups", arguments.get("groups", 1))
    batch = (grad_output.shape[0],) if batched else ()
    geometry = conv1d_geometry(
        (*batch, weight.shape[1] * max(groups, 1), length), weight.shape, **arguments
    )
    _check_grad_output(grad_output, geometry)
    return Call(xp, geometry, weight.dtype)


def weight_grad_call(
    grad_output: Array, input: Array, kernel_size: object, **arguments: object
) -> Call:
    """Check an unscaled wgrad: the weight's shape is implied by the arguments."""
    xp = check_arrays(grad_output=grad_output, input=input)
    size = _size("kernel_size", kernel_size)
    _check_rank("grad_output", grad_output)
    _check_rank("input", input)
    if grad_output.ndim != input.ndim:
        raise ValueError(
            f"grad_output and input must both be batched or both unbatched, got shapes "
            f"{tuple(grad_output.shape)} and {tuple(input.shape)}"
        )
    groups = as_int("groups", arguments.get("groups", 1))
    in_channels = input.shape[-2]
    fan_in = in_channels // groups if groups > 0 and in_channels % groups == 0 else in_channels
    geometry = conv1d_geometry(input.shape, (grad_output.shape[-2], fan_in, size), **arguments)
    _check_grad_output(grad_output, geometry)
    return Call(xp, geometry, input.dtype)
