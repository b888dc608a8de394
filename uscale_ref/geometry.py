"""The shape arithmetic of a 1-D convolution, and the checks that guard it.

Everything here works on shapes and Python integers only, so it can be shared
by the array code, the scale formulas and anything that only wants to know
"how long is the output?".

With input length :math:`L`, kernel length :math:`K`, stride :math:`s`,
dilation :math:`d` and paddings :math:`p_l, p_r`, the output length is

.. math::

    L_\\text{out} = \\left\\lfloor \\frac{L + p_l + p_r - d (K - 1) - 1}{s} \\right\\rfloor + 1 .

``padding="same"`` pads :math:`d (K - 1)` in total, the odd element (if any)
on the right, as :func:`torch.nn.functional.conv1d` does.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Conv1dGeometry", "as_int", "conv1d_geometry", "output_length"]


@dataclass(frozen=True)
class Conv1dGeometry:
    """Every size a 1-D convolution needs, resolved and checked.

    Attributes
    ----------
    batch_size : int
        ``N``; 1 for unbatched input (see ``batched``).
    in_channels, in_length : int
        ``C`` and ``L`` of the input.
    out_channels, kernel_size : int
        ``O`` and ``K`` of the weight.
    groups : int
        ``G``; each group maps ``C / G`` input to ``O / G`` output channels.
    stride, dilation, pad_left, pad_right : int
        The resolved integer arguments.
    out_length : int
        ``L_out``, at least 1.
    batched : bool
        Whether the input had a batch axis.
    """

    batch_size: int
    in_channels: int
    in_length: int
    out_channels: int
    kernel_size: int
    groups: int
    stride: int
    dilation: int
    pad_left: int
    pad_right: int
    out_length: int
    batched: bool

    @property
    def fan_in(self) -> int:
        """Input channels per group, ``C / G`` (``weight.shape[1]``)."""
        return self.in_channels // self.groups

    @property
    def fan_out(self) -> int:
        """Output channels, ``O`` (``weight.shape[0]``), as upstream names it."""
        return self.out_channels

    @property
    def padded_length(self) -> int:
        """Length of the zero-padded input, ``p_l + L + p_r``."""
        return self.pad_left + self.in_length + self.pad_right

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the input as given (without batch axis when unbatched)."""
        inner = (self.in_channels, self.in_length)
        return (self.batch_size, *inner) if self.batched else inner

    @property
    def weight_shape(self) -> tuple[int, int, int]:
        """Shape of the weight, ``(O, C / G, K)``."""
        return (self.out_channels, self.fan_in, self.kernel_size)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the output (without batch axis when unbatched)."""
        inner = (self.out_channels, self.out_length)
        return (self.batch_size, *inner) if self.batched else inner


def output_length(
    in_length: int, kernel_size: int, stride: int, pad_left: int, pad_right: int, dilation: int
) -> int:
    """Length of a correlation's output (may be ``<= 0`` when the kernel does not fit).

    Examples
    --------
    >>> output_length(10, 3, stride=2, pad_left=1, pad_right=1, dilation=1)
    5
    """
    span = dilation * (kernel_size - 1) + 1
    return (in_length + pad_left + pad_right - span) // stride + 1


def as_int(name: str, value: object) -> int:
    """Accept an int or a one-element tuple/list of int (never a bool)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 1:
            raise ValueError(
                f"{name} must be an int or a one-element tuple, got a sequence of length "
                f"{len(value)}: {value!r}"
            )
        (value,) = value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a one-element tuple of int, got a bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a one-element tuple of int, got {type(value).__name__}"
        ) from None


def _brief(value: object) -> str:
    """A value in a few words: an array by its type, shape and dtype, not its contents."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None:
        hint = " (pass its .shape)" if dtype is not None else ""
        return f"a {type(value).__name__} of shape {tuple(shape)}{hint}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_shape(name: str, shape: object, ranks: tuple[int, ...], axes: str) -> tuple[int, ...]:
    """The shape as a tuple of ints, or a TypeError / ValueError naming ``name``."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        shown = _brief(shape)
        raise TypeError(f"{name} shape must be a sequence of ints {axes}, got {shown}")
    if len(shape) not in ranks:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, ranks))} dimensions {axes}, "
            f"got shape {tuple(shape)}"
        )
    if any(size is None for size in shape):
        raise ValueError(f"{name} must have a known shape, got {tuple(shape)}")
    sizes = []
    for size in shape:
        if isinstance(size, bool):
            raise TypeError(f"{name} shape must hold ints, got {tuple(shape)!r}")
        try:
            sizes.append(operator.index(size))
        except TypeError:
            raise TypeError(f"{name} shape must hold ints, got {tuple(shape)!r}") from None
    return tuple(sizes)


def conv1d_geometry(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    *,
    stride: object = 1,
    padding: object = 0,
    dilation: object = 1,
    groups: object = 1,
) -> Conv1dGeometry:
    """Check a convolution's shapes and arguments and resolve every size.

    Parameters
    ----------
    input_shape : sequence of int
        ``(N, C, L)`` or unbatched ``(C, L)``.
    weight_shape : sequence of int
        ``(O, C / groups, K)``.
    stride, dilation : int or tuple of one int
        At least 1.
    padding : int, tuple of one int, ``"valid"`` or ``"same"``
        Zeros added on both sides; ``"same"`` requires ``stride == 1``.
    groups : int
        At least 1, dividing both ``C`` and ``O``.

    Returns
    -------
    Conv1dGeometry

    Raises
    ------
    TypeError
        For an argument of the wrong type.
    ValueError
        For a shape or value outside the domain, with the argument named.

    Examples
    --------
    >>> g = conv1d_geometry((2, 4, 10), (6, 2, 4), padding="same", groups=2)
    >>> (g.pad_left, g.pad_right, g.out_length)
    (1, 2, 10)
    """
    input_shape = _check_shape("input", input_shape, (2, 3), "(N, C, L) or (C, L)")
    weight_shape = _check_shape("weight", weight_shape, (3,), "(C_out, C_in / groups, K)")

    stride = as_int("stride", stride)
    dilation = as_int("dilation", dilation)
    groups = as_int("groups", groups)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")

    batched = len(input_shape) == 3
    batch_size, in_channels, in_length = input_shape if batched else (1, *input_shape)
    out_channels, fan_in, kernel_size = weight_shape
    if batch_size < 1:
        raise ValueError(
            f"input must have a non-empty batch (N >= 1), got shape {input_shape}: the "
            "grad_weight scale 1 / (N * L_out) ** p is undefined for an empty batch"
        )
    if in_channels < 1 or in_length < 1:
        raise ValueError(f"input must have C >= 1 and L >= 1, got shape {input_shape}")
    if out_channels < 1 or fan_in < 1 or kernel_size < 1:
        raise ValueError(f"weight must have no empty dimension, got shape {weight_shape}")
    if in_channels % groups:
        raise ValueError(f"groups={groups} must divide the input channels C={in_channels}")
    if out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide the output channels weight.shape[0]={out_channels}"
        )
    if fan_in * groups != in_channels:
        raise ValueError(
            f"weight.shape[1] must be C / groups = {in_channels} / {groups} = "
            f"{in_channels // groups}, got weight shape {weight_shape}"
        )

    span = dilation * (kernel_size - 1)
    if isinstance(padding, str):
        if padding == "valid":
            pad_left = pad_right = 0
        elif padding == "same":
            if stride != 1:
                raise ValueError(f"padding='same' requires stride=1, got stride={stride}")
            pad_left, pad_right = span // 2, span - span // 2
        else:
            raise ValueError(
                f"padding must be 'valid', 'same', an int or a one-element tuple, got {padding!r}"
            )
    else:
        pad_left = pad_right = as_int("padding", padding)
        if pad_left < 0:
            raise ValueError(f"padding must be >= 0, got {pad_left}")

    out_length = output_length(in_length, kernel_size, stride, pad_left, pad_right, dilation)
    if out_length < 1:
        raise ValueError(
            f"the dilated kernel (length dilation*(K-1)+1 = {span + 1}) is longer than the "
            f"padded input (length {pad_left + in_length + pad_right}): the output would be empty"
        )
    # Sizes are checked before anything is allocated: an output no machine can
    # address is refused here, not left to fail inside an array library.
    elements = batch_size * out_channels * out_length
    if elements > sys.maxsize // 16:
        raise ValueError(
            f"the output would have N * C_out * L_out = {batch_size} * {out_channels} * "
            f"{out_length} elements, more than can be addressed; check padding={padding!r} "
            f"and the input length {in_length}"
        )
    return Conv1dGeometry(
        batch_size=batch_size,
        in_channels=in_channels,
        in_length=in_length,
        out_channels=out_channels,
        kernel_size=kernel_size,
        groups=groups,
        stride=stride,
        dilation=dilation,
        pad_left=pad_left,
        pad_right=pad_right,
        out_length=out_length,
        batched=batched,
    )
