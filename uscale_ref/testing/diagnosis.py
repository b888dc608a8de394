"""Naming the likely mistake behind a failing result: the classic errors of a conv1d kernel.

Each mistake is a function of a golden case and its inputs that returns the
results a kernel making that mistake would give (computed with uscale_ref in
float64 or complex128). A failure is *explained* by a mistake when, for every
failing array the mistake produces, the mistake's result is itself wrong (it
fails the case's tolerance) and the kernel's result matches it within that
tolerance (a little wider: the kernel's own rounding comes on top), measured
against the wrong sum's own magnitude: the same mistake run on the inputs'
absolute values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import conv1d, conv1d_backward, conv1d_scales
from ..constraints import CONSTRAINT_NAMES
from ..geometry import conv1d_geometry
from ..golden import Fixture, allowed_units
from ..golden.fixture import unit_roundoff

__all__ = ["MISTAKES", "diagnose"]

Results = dict[str, npt.NDArray[Any]]
Mistake = Callable[[Fixture, "Inputs"], Results]
NO_CAUSE = "no single known mistake explains this"


@dataclass(frozen=True)
class Inputs:
    """A case's inputs, widened; ``magnitude``: their absolute values (``|re| + |im|``)."""

    x: Any
    w: Any
    b: Any
    g: Any
    magnitude: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.x, self.w, self.b, self.g))


def _inputs(case: Fixture, magnitude: bool = False) -> Inputs:
    wide = np.complex128 if case.storage_dtype.startswith("complex") else np.float64
    x, w, b, g = (case.inputs[n] for n in ("input", "weight", "bias", "grad_output"))

    def widen(a: Any) -> Any:
        return None if a is None else _l1(a) if magnitude else a.astype(wide)

    return Inputs(widen(x), widen(w), widen(b), widen(g), magnitude=magnitude)


def _l1(a: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    if np.iscomplexobj(a):
        return np.abs(a.real.astype(np.float64)) + np.abs(a.imag.astype(np.float64))
    return np.abs(a.astype(np.float64))


def _run(case: Fixture, x: Any, w: Any, b: Any, g: Any, **changes: Any) -> Results:
    kwargs = {**case.kwargs, **changes}
    grads = conv1d_backward(g, x, w, b, **kwargs)
    results = {"output": conv1d(x, w, b, **kwargs), **grads._asdict()}
    return {k: v for k, v in results.items() if v is not None}


def _shapes(case: Fixture) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The input's and the weight's shapes."""
    return case.arrays["input"].shape, case.arrays["weight"].shape


def _geometry_of(case: Fixture) -> Any:
    shape = {k: case.kwargs[k] for k in ("stride", "padding", "dilation", "groups")}
    return conv1d_geometry(*_shapes(case), **shape)


def padding_on_the_wrong_side(case: Fixture, inputs: Inputs) -> Results:
    geometry = _geometry_of(case)
    if geometry.pad_left == geometry.pad_right:
        return {}
    x, w, b, g = inputs
    widths = [(0, 0)] * (x.ndim - 1) + [(geometry.pad_right, geometry.pad_left)]
    wrong = _run(case, np.pad(x, widths), w, b, g, padding=0)
    start = geometry.pad_right
    wrong["grad_input"] = wrong["grad_input"][..., start : start + geometry.in_length]
    return wrong


def missing_conjugate_in_dgrad(case: Fixture, inputs: Inputs) -> Results:
    x, w, b, g = inputs
    if not np.iscomplexobj(w):
        return {}
    return {"grad_input": _run(case, x, np.conj(w), b, g)["grad_input"]}


def missing_conjugate_in_wgrad(case: Fixture, inputs: Inputs) -> Results:
    x, w, b, g = inputs
    if not np.iscomplexobj(x):
        return {}
    return {"grad_weight": _run(case, np.conj(x), w, b, g)["grad_weight"]}


def conjugate_in_the_forward(case: Fixture, inputs: Inputs) -> Results:
    x, w, b, g = inputs
    if not np.iscomplexobj(w):
        return {}
    return {"output": _run(case, x, np.conj(w), b, g)["output"]}


def flipped_kernel(case: Fixture, inputs: Inputs) -> Results:
    x, w, b, g = inputs
    if w.shape[-1] == 1:
        return {}
    wrong = _run(case, x, np.flip(w, axis=-1).copy(), b, g)
    wrong["grad_weight"] = np.flip(wrong["grad_weight"], axis=-1)
    return wrong


def bias_after_the_scale(case: Fixture, inputs: Inputs) -> Results:
    x, w, b, g = inputs
    scale = conv1d_scales(x.shape, w.shape, **case.kwargs).output
    if b is None or scale == 1.0:
        return {}
    return {"output": _run(case, x, w, None, g)["output"] + b[:, None]}


def group_channel_order(case: Fixture, inputs: Inputs) -> Results:
    x, w, b, g = inputs
    groups = case.kwargs["groups"]
    channels = x.shape[-2]
    per_group = channels // groups
    if groups == 1 or per_group == 1:
        return {}
    # Group g reads channels g, g + G, g + 2G, ... instead of g C_g ... g C_g + C_g - 1.
    order = np.array([i * groups + k for k in range(groups) for i in range(per_group)])
    wrong = _run(case, x[..., order, :], w, b, g)
    inverse = np.argsort(order)
    wrong["grad_input"] = wrong["grad_input"][..., inverse, :]
    return wrong


def stride_and_dilation_swapped_in_wgrad(case: Fixture, inputs: Inputs) -> Results:
    """grad_w[o, i, k] read from x_pad[l d + k s] instead of x_pad[l s + k d]."""
    geometry = _geometry_of(case)
    stride, dilation, groups = geometry.stride, geometry.dilation, geometry.groups
    if stride == dilation:
        return {}
    x, w, _, g = inputs
    x, g = (a if geometry.batched else a[None] for a in (x, g))
    out_length, kernel = g.shape[-1], w.shape[-1]
    reach = (out_length - 1) * dilation + (kernel - 1) * stride + 1
    right = max(geometry.pad_right, reach - geometry.pad_left - geometry.in_length)
    x_pad = np.conj(np.pad(x, ((0, 0), (0, 0), (geometry.pad_left, right))))
    fan_in, out_per_group = w.shape[1], w.shape[0] // groups
    grad = np.zeros(w.shape, dtype=np.result_type(x, g))
    for group in range(groups):
        rows = g[:, group * out_per_group : (group + 1) * out_per_group]
        channels = x_pad[:, group * fan_in : (group + 1) * fan_in]
        for k in range(kernel):
            taps = channels[
                ..., k * stride : k * stride + (out_length - 1) * dilation + 1 : dilation
            ]
            grad[group * out_per_group : (group + 1) * out_per_group, :, k] = np.einsum(
                "nol,ncl->oc", rows, taps
            )
    scale = conv1d_scales(*_shapes(case), **case.kwargs).grad_weight
    return {"grad_weight": grad * (abs(scale) if inputs.magnitude else scale)}


def output_channel_order(case: Fixture, inputs: Inputs) -> Results:
    """Output channels interleaved across groups: o = i G + g instead of g O_g + i."""
    groups, out_channels = case.kwargs["groups"], case.arrays["weight"].shape[0]
    per_group = out_channels // groups
    if groups == 1 or per_group == 1:
        return {}
    # The kernel writes the true channel source[j] at j, and reads grad_output likewise.
    source = np.array([g * per_group + i for i in range(per_group) for g in range(groups)])
    x, w, b, g = inputs
    wrong = _run(case, x, w, b, g[..., np.argsort(source), :])
    wrong["output"] = wrong["output"][..., source, :]
    return wrong


def _constraint(other: str | None) -> Mistake:
    def mistake(case: Fixture, inputs: Inputs) -> Results:
        if (case.kwargs["constraint"] or None) == other:
            return {}
        x, w, b, g = inputs
        wrong = _run(case, x, w, b, g, constraint=other)
        return {k: wrong[k] for k in ("output", "grad_input")}

    return mistake


def _scale(name: str, power: int) -> Mistake:
    field = {"output": "output", "grad_input": "grad_input"}.get(name, "grad_weight")

    def mistake(case: Fixture, inputs: Inputs) -> Results:
        scale = getattr(conv1d_scales(*_shapes(case), **case.kwargs), field)
        if name not in case.expected or scale == 1.0:
            return {}
        if inputs.magnitude:
            return {name: case.error_scale(name) * abs(scale) ** power}
        wide = np.complex128 if case.storage_dtype.startswith("complex") else np.float64
        return {name: case.expected[name].astype(wide) * scale**power}

    return mistake


def _shifted(direction: int) -> Mistake:
    def mistake(case: Fixture, inputs: Inputs) -> Results:
        expected = case.error_scale("output") if inputs.magnitude else case.expected["output"]
        if expected.shape[-1] < 2:
            return {}
        return {"output": np.roll(expected, direction, axis=-1)}

    return mistake


MISTAKES: list[tuple[str, Mistake, int]] = [
    ("padding: the odd extra zero of 'same' put on the left (PyTorch puts it on the right)",
     padding_on_the_wrong_side, 0),
    ("a missing complex conjugate in dgrad (grad_input needs conj(w))",
     missing_conjugate_in_dgrad, 0),
    ("a missing complex conjugate in wgrad (grad_weight needs conj(x))",
     missing_conjugate_in_wgrad, 0),
    ("an extra complex conjugate in the forward pass", conjugate_in_the_forward, 0),
    ("the kernel flipped: a true convolution instead of a cross-correlation", flipped_kernel, 0),
    ("the bias added after the output scale instead of inside it", bias_after_the_scale, 0),
    ("groups' channel order: each group must take a contiguous block of channels",
     group_channel_order, 0),
    ("stride and dilation roles not swapped in wgrad", stride_and_dilation_swapped_in_wgrad, 0),
    ("output channels interleaved across groups: group g must write outputs g O_g ... "
     "g O_g + O_g - 1", output_channel_order, 0),
    *((f"a different constraint: {other!r} instead of the one asked for", _constraint(other), 0)
      for other in CONSTRAINT_NAMES if other != ""),
    *((f"the {name} scale {'missing' if p == -1 else 'applied twice'}", _scale(name, p), 0)
      for name in ("output", "grad_input", "grad_weight", "grad_bias") for p in (-1, 1)),
    ("the output shifted by one position: cropped or offset on the wrong side", _shifted(1), 1),
    ("the output shifted by one position the other way", _shifted(-1), -1),
]  # fmt: skip


def _within(
    case: Fixture, name: str, a: Any, b: Any, magnitude: Any, precision: str, roll: int
) -> bool:
    """Whether ``a`` equals ``b`` within (twice) the case's tolerance, in units of ``magnitude``.

    ``roll``: compare a shifted result without the element rolled in at the edge.
    """
    trim = slice(1, None) if roll > 0 else slice(None, -1) if roll < 0 else slice(None)
    a, b, magnitude = np.asarray(a)[..., trim], np.asarray(b)[..., trim], magnitude[..., trim]
    wide = np.complex128 if np.iscomplexobj(a) or np.iscomplexobj(b) else np.float64
    error = np.abs(a.astype(wide) - b.astype(wide))
    allowed = (2 * allowed_units(case, name, precision) + 4) * unit_roundoff(case.dtype)
    return bool(np.all((error <= allowed * magnitude) | (error == 0)))


def diagnose(
    case: Fixture, results: dict[str, Any], failing: list[str], precision: str = "exact"
) -> str:
    """The likely cause of the ``failing`` arrays of ``results``, or :data:`NO_CAUSE`.

    Mistakes are tried in the order of :data:`MISTAKES`; the first whose wrong
    results differ from the expected ones and match every failing array it
    produces is named.
    """
    with np.errstate(all="ignore"):
        inputs = (_inputs(case), _inputs(case, magnitude=True))
        for description, mistake, roll in MISTAKES:
            if _explains(case, inputs, mistake, roll, results, failing, precision):
                return description
    return NO_CAUSE


def _explains(
    case: Fixture,
    inputs: tuple[Inputs, Inputs],
    mistake: Mistake,
    roll: int,
    results: dict[str, Any],
    failing: list[str],
    precision: str,
) -> bool:
    """Whether ``mistake`` changes every failing array it touches, and into the kernel's."""
    try:
        wrong = mistake(case, inputs[0])
        magnitudes = mistake(case, inputs[1])
    except (ValueError, TypeError):  # the mistake cannot happen for this case
        return False
    covered = [name for name in failing if name in wrong and name in results]
    if not covered:
        return False
    for name in covered:
        scale = case.error_scale(name)
        if roll:
            scale = np.roll(scale, roll, axis=-1)
        if name in magnitudes:
            scale = np.maximum(scale, np.abs(magnitudes[name]))
        expected = case.expected[name]
        if _within(case, name, wrong[name], expected, case.error_scale(name), precision, 0):
            return False  # the mistake changes nothing here: it cannot be what went wrong
        if not _within(case, name, results[name], wrong[name], scale, precision, roll):
            return False
    return True
