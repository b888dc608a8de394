"""The mistakes a conv1d kernel classically makes, each as the terms it forms instead.

A :class:`Mistake` names the arrays it changes and, for a case, the
:class:`~.terms.Variant` a kernel making it computes (None where the mistake
cannot happen in that case, or changes nothing). The scale mistakes, which
multiply a whole array by a known factor, are listed apart
(:func:`scale_candidates`): they are told by the factor alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...constraints import CONSTRAINT_NAMES
from ...geometry import Conv1dGeometry
from ...scales import scales_for_geometry
from .terms import Variant

__all__ = ["MISTAKES", "Mistake", "rounding", "scale_candidates"]

ALL = ("output", "grad_input", "grad_weight")
#: The format each narrow dtype's results (and parts) are rounded to.
_NARROW = {"bfloat16": "bfloat16", "float16": "float16", "complex32": "float16"}
EVERY = (*ALL, "grad_bias")


@dataclass(frozen=True)
class Mistake:
    """One classic mistake.

    Attributes
    ----------
    description : str
        The words of the ``likely cause:`` line.
    arrays : tuple of str
        The results it changes.
    variant : callable
        ``variant(geometry, case)``: the terms a kernel making it forms, or None.
    edge : int
        1 (or -1) for a result shifted right (or left): its first (last) position holds
        whatever the kernel rolled in, and is not compared.
    exact : bool
        A mistake in the last rounding, which moves results by less than a unit in the
        last place: the kernel must give its predicted values themselves (nine elements
        in ten at least, more often than the right ones), not merely come within a
        correct kernel's error of them, as a small wrong scale would.
    """

    description: str
    arrays: tuple[str, ...]
    variant: Callable[[Conv1dGeometry, Any], Variant | None]
    edge: int = 0
    exact: bool = False


def _complex(case: Any) -> bool:
    return str(case.dtype).startswith("complex")


def _has_bias(case: Any) -> bool:
    return bool(case.metadata["resolved"]["has_bias"])


def rounding(format: str, mode: str = "nearest") -> Callable[[Any], Any]:
    """Multiplicands rounded to ``format`` (part by part for complex values)."""
    from ...formats import round_to

    def real(a: Any) -> Any:
        if format == "float32":
            return a.astype(np.float32).astype(np.float64)
        if format == "float16":
            return a.astype(np.float16).astype(np.float64)
        return round_to(a, format, mode)  # type: ignore[arg-type]

    def apply(a: Any) -> Any:
        if np.iscomplexobj(a):
            return real(np.ascontiguousarray(a.real)) + 1j * real(np.ascontiguousarray(a.imag))
        return real(a)

    return apply


def _interleaved(geo: Conv1dGeometry) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Output channels interleaved across groups: the kernel's channel ``j`` holds the true
    channel ``source[j]``, and its backward reads grad_output channel ``j`` as ``source[j]``."""
    per_group = geo.out_channels // geo.groups
    if geo.groups == 1 or per_group == 1:
        return None
    source = [g * per_group + i for i in range(per_group) for g in range(geo.groups)]
    inverse = np.argsort(source)
    return tuple(source), tuple(int(i) for i in inverse)


def _e4m3_for_e5m2(case: Any) -> str | None:
    """In a case whose input and weight are E4M3 and grad_output E5M2 (the unit-scaling
    recipe): the E4M3 format, which rounds grad_output alone (the others are in it)."""
    formats = getattr(case.spec, "formats", {}) or {}
    wide, narrow = formats.get("grad_output", ""), formats.get("input", "")
    if "e5m2" in wide and "e4m3" in narrow and formats.get("weight") == narrow:
        return str(narrow)
    return None


def _when(condition: bool, variant: Variant) -> Variant | None:
    return variant if condition else None


MISTAKES: list[Mistake] = [
    Mistake("nothing computed: the results are zeros", EVERY,
            lambda geo, case: Variant(operands=np.zeros_like, bias="missing"), exact=True),
    Mistake("padding: the odd extra zero of 'same' put on the left (PyTorch puts it on the "
            "right)", ALL,
            lambda geo, case: _when(geo.pad_left != geo.pad_right,
                                    Variant(pad_left=geo.pad_right))),
    Mistake("a missing complex conjugate in dgrad (grad_input needs conj(w))", ("grad_input",),
            lambda geo, case: _when(_complex(case), Variant(conj_dgrad=False))),
    Mistake("a missing complex conjugate in wgrad (grad_weight needs conj(x))",
            ("grad_weight",),
            lambda geo, case: _when(_complex(case), Variant(conj_wgrad=False))),
    Mistake("an extra complex conjugate in the forward pass", ("output",),
            lambda geo, case: _when(_complex(case), Variant(conj_forward=True))),
    Mistake("the kernel flipped: a true convolution instead of a cross-correlation", ALL,
            lambda geo, case: _when(geo.kernel_size > 1, Variant(flip=True))),
    Mistake("the last tap left out of the sums", ALL,
            lambda geo, case: _when(geo.kernel_size > 1,
                                    Variant(drop_tap=geo.kernel_size - 1))),
    Mistake("the first tap left out of the sums", ALL,
            lambda geo, case: _when(geo.kernel_size > 1, Variant(drop_tap=0))),
    Mistake("the bias added after the output scale instead of inside it", ("output",),
            lambda geo, case: _when(_has_bias(case), Variant(bias="after"))),
    Mistake("the bias left out of the output", ("output",),
            lambda geo, case: _when(_has_bias(case), Variant(bias="missing"))),
    Mistake("the bias scaled twice (s (sum + s b))", ("output",),
            lambda geo, case: _when(_has_bias(case), Variant(bias="twice"))),
    Mistake("summed over the first batch item only", ("grad_weight", "grad_bias"),
            lambda geo, case: _when(geo.batched and geo.batch_size > 1, Variant(items=1))),
    Mistake("groups' channel order: each group must take a contiguous block of channels",
            ALL,
            lambda geo, case: _when(geo.groups > 1 and geo.fan_in > 1,
                                    Variant(strided_channels=True))),
    Mistake("output channels interleaved across groups: group g must write outputs g O_g ... "
            "g O_g + O_g - 1", ALL,
            lambda geo, case: None if (rows := _interleaved(geo)) is None
            else Variant(output_rows=rows[0], grad_rows=rows[1])),
    Mistake("stride and dilation roles not swapped in wgrad", ("grad_weight",),
            lambda geo, case: _when(geo.stride != geo.dilation,
                                    Variant(stride=geo.dilation, dilation=geo.stride))),
    Mistake("stride and dilation swapped: positions l d + k s instead of l s + k d",
            ("output", "grad_input"),
            lambda geo, case: _when(geo.stride != geo.dilation,
                                    Variant(stride=geo.dilation, dilation=geo.stride))),
    Mistake("the dilation ignored: taps one position apart", ALL,
            lambda geo, case: _when(geo.dilation > 1, Variant(dilation=1))),
    Mistake("the stride ignored: output positions one input position apart", ALL,
            lambda geo, case: _when(geo.stride > 1, Variant(stride=1))),
    Mistake("the output shifted by one position: cropped or offset on the wrong side",
            ("output",), lambda geo, case: Variant(pad_left=geo.pad_left + geo.stride), 1),
    Mistake("the output shifted by one position the other way", ("output",),
            lambda geo, case: Variant(pad_left=geo.pad_left - geo.stride), -1),
    Mistake("computes in TF32: multiplicands rounded to 11 significant bits (to nearest), "
            "as cuDNN with allow_tf32 (or float16 inputs)", EVERY,
            lambda geo, case: _when(case.dtype in ("float32", "complex64"),
                                    Variant(operands=rounding("tf32")))),
    Mistake("computes in TF32: multiplicands truncated to 11 significant bits, as tensor cores "
            "read float32", EVERY,
            lambda geo, case: _when(case.dtype in ("float32", "complex64"),
                                    Variant(operands=rounding("tf32", "toward_zero")))),
    Mistake("inputs rounded to float16 (11 significant bits, float16's range)", EVERY,
            lambda geo, case: _when(case.dtype in ("float32", "complex64", "float64",
                                                   "complex128"),
                                    Variant(operands=rounding("float16")))),
    Mistake("inputs rounded to bfloat16", EVERY,
            lambda geo, case: _when(case.dtype not in ("bfloat16",),
                                    Variant(operands=rounding("bfloat16")))),
    Mistake("grad_output rounded to E4M3 where the case's E5M2 belongs: its small values "
            "lost (E4M3's range ends near 2^-9, E5M2's near 2^-16)",
            ("grad_input", "grad_weight", "grad_bias"),
            lambda geo, case: None if (narrow := _e4m3_for_e5m2(case)) is None
            else Variant(operands=rounding(narrow))),
    Mistake("inputs rounded to FP8 E4M3 (float8_e4m3fn)", EVERY,
            lambda geo, case: Variant(operands=rounding("float8_e4m3fn"))),
    Mistake("inputs rounded to FP8 E5M2 (float8_e5m2)", EVERY,
            lambda geo, case: Variant(operands=rounding("float8_e5m2"))),
    Mistake("results truncated (rounded toward zero) where rounding to nearest belongs",
            EVERY,
            lambda geo, case: _when(case.dtype in _NARROW,
                                    Variant(results=rounding(_NARROW.get(case.dtype, ""),
                                                             "toward_zero"))),
            exact=True),
]  # fmt: skip


def swapped_groups(geo: Conv1dGeometry, first: int, second: int) -> Mistake:
    """Groups ``first`` and ``second`` each use the other's weight (and bias) block."""
    order = list(range(geo.groups))
    order[first], order[second] = second, first
    per_group = geo.out_channels // geo.groups
    return Mistake(
        f"the weight blocks of groups {first} and {second} swapped (output channels "
        f"{first * per_group}..{(first + 1) * per_group - 1} and "
        f"{second * per_group}..{(second + 1) * per_group - 1} use each other's weights)",
        ALL,
        lambda g, case: Variant(weight_groups=tuple(order)),
    )


@dataclass(frozen=True)
class ScaleMistake:
    """A whole array multiplied by ``factor`` times its right value."""

    description: str
    array: str
    factor: float


def scale_candidates(geo: Conv1dGeometry, case: Any) -> list[ScaleMistake]:
    """The factors a wrong scale rule gives each array: a scale missing or applied twice,
    another constraint, the scale powers misapplied, a mean for a sum."""
    kwargs = case.kwargs
    right = scales_for_geometry(geo, kwargs["constraint"], kwargs["scale_power"])._asdict()
    found: list[ScaleMistake] = []

    def add(description: str, array: str, factor: float) -> None:
        if math.isfinite(factor) and factor > 0 and abs(factor - 1) > 1e-12:
            found.append(ScaleMistake(description, array, factor))

    for name, scale in right.items():
        if scale != 0 and math.isfinite(scale):
            add(f"the {name} scale missing", name, 1 / scale)
            add(f"the {name} scale applied twice", name, scale)
    for other in CONSTRAINT_NAMES:
        if other == "" or other == (kwargs["constraint"] or None):
            continue
        wrong = scales_for_geometry(geo, other, kwargs["scale_power"])._asdict()
        for name in ("output", "grad_input"):
            add(f"a different constraint: {other!r} instead of the one asked for", name,
                wrong[name] / right[name])  # fmt: skip
    powers = tuple(kwargs["scale_power"])
    alternatives = {(0.5, 0.5, 0.5): "the default scale_power (0.5, 0.5, 0.5) used instead"}
    for order in ((1, 0, 2), (0, 2, 1), (2, 1, 0), (1, 2, 0), (2, 0, 1)):
        permuted = tuple(powers[i] for i in order)
        alternatives.setdefault(permuted, f"scale_power misapplied: {permuted} used for "
                                          "(output, grad_input, grad_weight)")  # fmt: skip
    for other_powers, text in alternatives.items():
        if other_powers == powers:
            continue
        wrong = scales_for_geometry(geo, kwargs["constraint"], other_powers)._asdict()
        for name, scale in wrong.items():
            add(text, name, scale / right[name])
    batch = geo.batch_size if geo.batched else 1
    for name in ("grad_weight", "grad_bias"):
        if batch > 1:
            add("a mean over the batch instead of a sum", name, 1 / batch)
        add("a mean over the batch and positions instead of a sum", name,
            1 / (batch * geo.out_length))  # fmt: skip
    return found
