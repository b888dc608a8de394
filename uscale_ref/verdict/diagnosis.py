"""Naming the likely mistake behind a failing result: the classic errors of a conv1d kernel.

Each mistake is a function of a case and its inputs that returns the results
a kernel making that mistake would give (computed with uscale_ref in float64
or complex128, on the inputs as the mistake sees them). A failure is
*explained* by a mistake when, for every failing array the mistake produces,

1. the mistake's result is itself wrong: it fails the verdict, as a kernel's
   result would; and
2. the kernel's result *matches* it: judged with the mistake's result as the
   expected value, the kernel's passes the element-wise bound (doubled: the
   kernel's own rounding comes on top) and the precision check, measured
   against the wrong sum's own magnitude (the mistake run on the inputs'
   absolute values).

A kernel that merely fails alike (all zeros against a scale applied twice,
say) matches no mistake. After the structural mistakes come the precision
mistakes (TF32 multiplicands, inputs rounded to a narrower format, a float64
kernel computing in float32, a narrow running sum), then a scale factor
estimated from the errors' bias, then where the failures lie (some channels,
items or positions wrong and the rest right).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .. import conv1d, conv1d_backward, conv1d_scales
from ..constraints import CONSTRAINT_NAMES
from ..geometry import conv1d_geometry
from .layout import groups_of, layout_of
from .precision import precision_figure, ratios
from .report import ArrayReport, difference, index_pattern, judge_array, rounded_magnitude
from .rule import MARGIN_BITS, SIGNIFICANT_BITS, UNIT_ROUNDOFF, Rule, rule_for

if TYPE_CHECKING:
    from ..golden.fixture import Fixture

__all__ = ["MISTAKES", "NO_CAUSE", "diagnose"]

Results = dict[str, npt.NDArray[Any]]
Simulation = Callable[["Fixture", "Inputs"], Results]
NO_CAUSE = "no single known mistake explains this"


@dataclass(frozen=True)
class Mistake:
    """One classic mistake: its description, how to simulate it, and how a kernel making it
    is matched.

    Attributes
    ----------
    description : str
        The words of the ``likely cause:`` line.
    simulate : callable
        ``simulate(case, inputs)``: the results of a kernel making the mistake
        (``{}`` when it cannot happen in this case).
    roll : int
        For a shifted output: compare without the element rolled in at the edge.
    """

    description: str
    simulate: Simulation
    roll: int = 0


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


def _wide_dtype(case: Fixture) -> type:
    return np.complex128 if case.storage_dtype.startswith("complex") else np.float64


def _inputs(case: Fixture, magnitude: bool = False) -> Inputs:
    wide = _wide_dtype(case)
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
    return case.result_shape("input"), case.result_shape("weight")


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
    groups, out_channels = case.kwargs["groups"], case.result_shape("weight")[0]
    per_group = out_channels // groups
    if groups == 1 or per_group == 1:
        return {}
    # The kernel writes the true channel source[j] at j, and reads grad_output likewise.
    source = np.array([g * per_group + i for i in range(per_group) for g in range(groups)])
    x, w, b, g = inputs
    wrong = _run(case, x, w, b, g[..., np.argsort(source), :])
    wrong["output"] = wrong["output"][..., source, :]
    return wrong


def _constraint(other: str | None) -> Simulation:
    def mistake(case: Fixture, inputs: Inputs) -> Results:
        if (case.kwargs["constraint"] or None) == other:
            return {}
        x, w, b, g = inputs
        wrong = _run(case, x, w, b, g, constraint=other)
        return {k: wrong[k] for k in ("output", "grad_input")}

    return mistake


def _scale(name: str, power: int) -> Simulation:
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


def _shifted(direction: int) -> Simulation:
    def mistake(case: Fixture, inputs: Inputs) -> Results:
        expected = case.error_scale("output") if inputs.magnitude else case.expected["output"]
        if expected.shape[-1] < 2 or case.positions("output") is not None:
            return {}
        return {"output": np.roll(expected, direction, axis=-1)}

    return mistake


def returns_zeros(case: Fixture, inputs: Inputs) -> Results:
    """Nothing computed: every result zero."""
    if inputs.magnitude:
        return {name: case.error_scale(name) for name in case.expected}
    return {name: np.zeros(a.shape, dtype=_wide_dtype(case)) for name, a in case.expected.items()}


def _rounded_inputs(format: str, rounding: str = "nearest") -> Simulation:
    """The multiplicands (input, weight, grad_output) rounded to ``format`` first; the bias,
    which multiplies nothing, as it is."""
    from ..formats import round_to

    def round_real(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if format == "float32":
            return a.astype(np.float32).astype(np.float64)
        return round_to(a, format, rounding)  # type: ignore[arg-type]

    def round_parts(a: Any) -> Any:
        if a is None:
            return None
        if np.iscomplexobj(a):
            return round_real(a.real.copy()) + 1j * round_real(a.imag.copy())
        return round_real(a)

    def mistake(case: Fixture, inputs: Inputs) -> Results:
        if UNIT_ROUNDOFF[_part_format(case)] >= UNIT_ROUNDOFF[format]:
            return {}  # the case's values already lie in the format (or a coarser one)
        if inputs.magnitude:
            return _run(case, *inputs)
        x, w, b, g = inputs
        return _run(case, round_parts(x), round_parts(w), b, round_parts(g))

    return mistake


def _part_format(case: Fixture) -> str:
    from .rule import OUTPUT_FORMAT

    return OUTPUT_FORMAT[case.dtype]


MISTAKES: list[Mistake] = [
    Mistake("padding: the odd extra zero of 'same' put on the left (PyTorch puts it on the right)",
            padding_on_the_wrong_side),
    Mistake("a missing complex conjugate in dgrad (grad_input needs conj(w))",
            missing_conjugate_in_dgrad),
    Mistake("a missing complex conjugate in wgrad (grad_weight needs conj(x))",
            missing_conjugate_in_wgrad),
    Mistake("an extra complex conjugate in the forward pass", conjugate_in_the_forward),
    Mistake("the kernel flipped: a true convolution instead of a cross-correlation",
            flipped_kernel),
    Mistake("the bias added after the output scale instead of inside it", bias_after_the_scale),
    Mistake("groups' channel order: each group must take a contiguous block of channels",
            group_channel_order),
    Mistake("stride and dilation roles not swapped in wgrad",
            stride_and_dilation_swapped_in_wgrad),
    Mistake("output channels interleaved across groups: group g must write outputs g O_g ... "
            "g O_g + O_g - 1", output_channel_order),
    *(Mistake(f"a different constraint: {other!r} instead of the one asked for",
              _constraint(other))
      for other in CONSTRAINT_NAMES if other != ""),
    *(Mistake(f"the {name} scale {'missing' if p == -1 else 'applied twice'}", _scale(name, p))
      for name in ("output", "grad_input", "grad_weight", "grad_bias") for p in (-1, 1)),
    Mistake("the output shifted by one position: cropped or offset on the wrong side",
            _shifted(1), 1),
    Mistake("the output shifted by one position the other way", _shifted(-1), -1),
    Mistake("nothing computed: the results are zeros", returns_zeros),
    Mistake("computes in TF32: multiplicands rounded to 11 significant bits (to nearest), "
            "e.g. cuDNN with allow_tf32 (or float16 inputs)", _rounded_inputs("tf32")),
    Mistake("computes in TF32: multiplicands truncated to 11 significant bits, as tensor cores "
            "read float32", _rounded_inputs("tf32", "toward_zero")),
    Mistake("inputs rounded to bfloat16", _rounded_inputs("bfloat16")),
]  # fmt: skip


def _judged(case: Fixture, name: str, values: Any) -> npt.NDArray[Any]:
    """``values`` of result ``name`` as the verdict judges them: flat, and at a compact
    fixture's positions when given whole."""
    values = np.asarray(values)
    positions = case.positions(name)
    flat: npt.NDArray[Any] = values.reshape(-1)
    if positions is not None and values.shape == case.result_shape(name):
        flat = flat[positions]
    return flat


def _matches(
    case: Fixture,
    name: str,
    kernel: Any,
    wrong: Any,
    magnitude: npt.NDArray[np.float64],
    rule: Rule,
    roll: int,
) -> bool:
    """Whether ``kernel`` passes as a result of a case whose exact values are ``wrong``.

    The bound is doubled (the kernel's own rounding comes on top of the
    mistake's), measured on ``magnitude`` (at least the case's error scale);
    the precision check applies as to any result. ``roll``: compare a shifted
    result without the element rolled in at the edge.
    """
    shape = case.result_shape(name)
    groups = groups_of(layout_of(name, shape), case.positions(name))
    kernel, wrong = _judged(case, name, kernel), _judged(case, name, wrong)
    magnitude = _judged(case, name, magnitude)
    if roll:  # whole arrays only (no shifted mistakes for a compact fixture)
        edge = groups.coords[-1] == (0 if roll > 0 else shape[-1] - 1)
        kernel, wrong, magnitude = (np.where(edge, 0, a) for a in (kernel, wrong, magnitude))
    with np.errstate(all="ignore"):
        error = np.abs(difference(kernel, wrong))
        rounded = rounded_magnitude(case, name, wrong, groups)
        terms = case.terms(name)
        if not np.all((error <= 2 * rule.bound(terms, magnitude, rounded)) | (error == 0)):
            return False
        ratio = ratios(error, rule.yardstick(terms, magnitude, rounded))
    return precision_figure(ratio, groups, rule.bits, MARGIN_BITS).passed


def diagnose(
    case: Fixture,
    results: dict[str, Any],
    failing: Sequence[str],
    precision: str = "exact",
    accumulate: str | None = None,
    reports: Sequence[ArrayReport] | None = None,
) -> str:
    """The likely cause of the ``failing`` arrays of ``results``, or :data:`NO_CAUSE`.

    Mistakes are tried in the order of :data:`MISTAKES`; the first whose wrong
    results differ from the expected ones and match every failing array it
    produces is named. Then a narrower running sum than the rule's (the
    result passes as a kernel that accumulates in bfloat16 or float16), a
    scale factor (the errors' bias, removed, leaves a correct result), and
    failures confined to some channels, batch items or positions
    (``reports``, the failing arrays' reports, when given).
    """
    rule = rule_for(case.dtype, precision, accumulate)
    failing = list(failing)
    with np.errstate(all="ignore"):
        inputs = (_inputs(case), _inputs(case, magnitude=True))
        for mistake in MISTAKES:
            if _explains(case, inputs, mistake, results, failing, rule):
                return mistake.description
        narrower = _narrower_sum(case, results, failing, rule)
        if narrower:
            return narrower
        factor = _scale_factor(case, results, failing, rule, reports)
        if factor:
            return factor
    return _where(case, failing, reports) or NO_CAUSE


def _explains(
    case: Fixture,
    inputs: tuple[Inputs, Inputs],
    mistake: Mistake,
    results: dict[str, Any],
    failing: list[str],
    rule: Rule,
) -> bool:
    """Whether ``mistake`` changes every failing array it touches, and into the kernel's."""
    roll = mistake.roll
    try:
        wrong = mistake.simulate(case, inputs[0])
        if not any(name in wrong for name in failing):
            return False
        magnitudes = mistake.simulate(case, inputs[1])
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
            scale = np.maximum(scale.reshape(-1), np.abs(_judged(case, name, magnitudes[name])))
        expected = case.expected[name]
        if _matches(case, name, wrong[name], expected, case.error_scale(name), rule, 0):
            return False  # the mistake changes nothing here: it cannot be what went wrong
        if not _matches(case, name, results[name], wrong[name], scale, rule, roll):
            return False
    return True


def _narrower_sum(
    case: Fixture, results: dict[str, Any], failing: list[str], rule: Rule
) -> str | None:
    """A kernel that sums in a narrower format than the rule's: a narrow case's own format
    (float16, bfloat16), or float32 in a float64 case. Named when the failing arrays pass
    as the results of such sums (bound and precision) and their precision is no better
    than such sums give (a few bits above the narrower format's)."""
    candidates = []
    if rule.output_format in ("float16", "bfloat16"):
        candidates.append(rule.output_format)
    if rule.output_format == "float64":
        candidates.append("float32")
    for name in candidates:
        if UNIT_ROUNDOFF[name] <= rule.u_acc:
            continue  # the rule already allows such sums
        narrower = Rule(rule.dtype, name, rule.precision, frozenset({"bound", "precision"}))
        reports = [judge_array(case, n, results[n], narrower) for n in failing if n in results]
        plausible = [
            judge_array(case, r.name, results[r.name], rule).precision.bits
            <= SIGNIFICANT_BITS[name] + 2 * MARGIN_BITS
            for r in reports
        ]
        if reports and all(r.passed for r in reports) and all(plausible):
            if name == "float32":
                return (
                    "computes in float32: the results pass as those of a float32 kernel "
                    "(inputs or sums in float32)"
                )
            return (
                f"accumulates in {name}: the results pass as those of a running sum rounded "
                f"to {name} (say so with accumulate={name!r}, or sum in float32)"
            )
    return None


def _scale_factor(
    case: Fixture,
    results: dict[str, Any],
    failing: list[str],
    rule: Rule,
    reports: Sequence[ArrayReport] | None,
) -> str | None:
    """ "a scale off by a factor 1 + beta" when removing that factor leaves correct results."""
    reports = reports or [judge_array(case, n, results[n], rule) for n in failing if n in results]
    factors = []
    for report in reports:
        if report.name not in failing:
            continue
        beta = report.bias.estimate
        if not np.isfinite(beta) or beta == 0 or beta <= -1:
            return None
        expected = case.expected[report.name]
        wide: npt.NDArray[Any] = expected.astype(_wide_dtype(case))
        corrected = np.asarray(results[report.name]).astype(wide.dtype) / (1 + beta)
        kernel_like = corrected.astype(expected.dtype)
        if not judge_array(case, report.name, kernel_like, rule).passed:
            return None
        factors.append((report.name, beta))
    if not factors:
        return None
    names = ", ".join(name for name, _ in factors)
    first = factors[0][1]
    if len({f"{beta:.1e}" for _, beta in factors}) == 1:
        return f"{names}: {_factor_text(first)} (the rest of the result is right)"
    return "; ".join(f"{name}: {_factor_text(beta)}" for name, beta in factors)


def _factor_text(beta: float) -> str:
    if abs(beta) < 0.01:
        return f"a scale off by a factor 1 {'+' if beta > 0 else '-'} {abs(beta):.1e}"
    return f"off by a factor {1 + beta:.4g} (a wrong scale)"


_ROW_WORDS = {
    "output": "output channels",
    "grad_input": "grad_input's input channels",
    "grad_weight": "grad_weight's output channels",
    "grad_bias": "grad_bias entries",
}


def _where(case: Fixture, failing: list[str], reports: Sequence[ArrayReport] | None) -> str | None:
    """ "output channels 64..127 wrong" when each failing array's failures lie in some rows
    (or batch items, or blocks of positions) and the rest pass."""
    if not reports:
        return None
    phrases = []
    for report in reports:
        if report.name not in failing:
            continue
        phrase = _confined(report)
        if phrase is None:
            return None
        phrases.append(phrase)
    return "; ".join(phrases) if phrases else None


def _confined(report: ArrayReport) -> str | None:
    """Where one report's failures lie, when that is a part of the array and not all of it."""
    p, layout = report.precision, report.layout
    checks = report.rule.checks
    short_tiles = p.tile_bits < p.required if "precision" in checks else None
    rows = np.zeros(layout.canonical[1], dtype=bool)
    if short_tiles is not None:
        rows |= short_tiles.any(axis=1)
        rows |= p.row_bits < p.required
    if "bias" in checks and report.bias.row_z.size:
        rows |= report.bias.row_z > report.bias.limit
    items = p.item_bits < p.required if "precision" in checks else np.zeros(0, dtype=bool)
    if report.failing and "bound" in checks:
        bound_rows = _failing_rows(report)
        if bound_rows is None:
            return None
        rows |= bound_rows
    judged = ~np.isnan(p.row_bits)
    if layout.row is not None and rows.any() and not rows[judged].all():
        words = _ROW_WORDS[report.name]
        where = index_pattern(rows, ("",)).lstrip()
        where = where.removeprefix("in ").removeprefix("= ").strip()
        right, of = int((~rows & judged).sum()), int(judged.sum())
        kept = "" if report.whole else " judged"
        return f"{words} {where} wrong ({right} of {of}{kept} right)"
    if items.size and items.any() and not items.all():
        where = index_pattern(items, ("n",))
        return f"{report.name}: batch items {where} wrong, the others right"
    return None


def _failing_rows(report: ArrayReport) -> npt.NDArray[np.bool_] | None:
    """The rows holding the elements over the bound, read from the report's pattern: None
    when the pattern does not name the row axis as a range or value."""
    layout = report.layout
    rows = np.zeros(layout.canonical[1], dtype=bool)
    for part in report.pattern.split(", "):
        letter, _, where = part.partition(" ")
        if letter != layout.row:
            continue
        if where.startswith("= "):
            rows[int(where[2:])] = True
            return rows
        if where.startswith("in ") and ".." in where and "{" not in where:
            low, high = where[3:].split(" ")[0].split("..")
            rows[int(low) : int(high) + 1] = True
            return rows
    return None
