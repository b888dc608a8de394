"""Overflow conventions, for a kernel that casts its operands to their formats itself.

A kernel with a fused cast is handed its operands wide (in the results' dtype) and
rounds each to its format before multiplying. What the cast does with a value beyond
the format's range is a convention of the format:

=====================  ==========================================
format                 a value beyond its range becomes
=====================  ==========================================
``float8_e4m3fn``      NaN (the format has no infinity)
``float8_e5m2``        ±inf
``float16``            ±inf
``unit_scaling_e4m3``  ± its largest, 240 (it saturates)
``unit_scaling_e5m2``  ± its largest, 57344 (it saturates)
=====================  ==========================================

A unit-scaled layer's operands stay far inside every one of these ranges, so no
golden case, however large, shows a cast that saturates where NaN belongs (or the
reverse). This small problem does: normal operands with a few values at twice the
format's largest (or the dtype's largest, if less), and results exact from the
operands cast by the format's own convention, NaN and inf included. A kernel's
results must show the same NaN and infinities, element for element, and be close to
the expected values elsewhere; when they are not, the results are compared with those
of each other convention (NaN, inf, saturation, or no cast at all) to name the one the
kernel follows.

The problem is valid padding (no padded position meets an infinity: ``inf * 0`` is
NaN where a product is formed and nothing where a kernel skips the padding, and both
are right).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import textbook
from ..formats import FORMATS, STORAGE, round_bits, round_to
from ..tolerance.rule import UNIT_ROUNDOFF
from ..verdict.diagnosis import NO_CAUSE

__all__ = ["CONVENTIONS", "OverflowFinding", "OverflowProblem", "cast", "convention_of",
           "judge_overflow", "overflow_problem"]  # fmt: skip

Float = npt.NDArray[np.float64]

#: What a value beyond a format's range may become: NaN, ±inf, ± the format's largest,
#: or itself (``"kept"``: no value cast at all, those within the range not rounded either).
CONVENTIONS = ("nan", "inf", "saturate", "kept")
_WORDS = {"nan": "gave NaN", "inf": "gave ±inf", "saturate": "saturated to ± its largest",
          "kept": "kept as they are (the operands not cast at all)"}  # fmt: skip
_OWN_WORDS = {"nan": "gives NaN", "inf": "gives ±inf", "saturate": "saturates"}
#: The problem's geometry: small, valid padding, every operand met by every result.
SHAPE = {"batch": 2, "in_channels": 4, "out_channels": 4, "length": 12, "kernel_size": 3}
KWARGS: dict[str, Any] = {
    "stride": 1,
    "padding": 0,
    "dilation": 1,
    "groups": 1,
    "constraint": "to_output_scale",
    "scale_power": (0.5, 0.5, 0.5),
}
#: Values beyond the range per operand (half of them negative).
OUTLIERS = 2
#: Finite results may miss the expected ones by this many units of rounding of their
#: magnitude (the problem is about the non-finite ones; the cases judge precision).
UNITS = 16
_DTYPE_LARGEST = {"float32": float(np.finfo(np.float32).max), "float16": 65504.0,
                  "bfloat16": FORMATS["bfloat16"].largest}  # fmt: skip
_OPERANDS = {"output": ("input", "weight"), "grad_input": ("grad_output", "weight"),
             "grad_weight": ("grad_output", "input"), "grad_bias": ("grad_output",)}  # fmt: skip


def _check_format(fmt: object, what: str) -> None:
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ValueError(f"{what} must be one of {sorted(FORMATS)}, got {fmt!r}")


def convention_of(fmt: str) -> str:
    """What a value beyond ``fmt``'s range becomes: ``"nan"``, ``"inf"`` or ``"saturate"``."""
    _check_format(fmt, "fmt")
    spec = FORMATS[fmt]
    return "nan" if spec.overflow_is_nan else "saturate" if spec.saturates else "inf"


def _beyond(x: Float, fmt: str) -> npt.NDArray[np.bool_]:
    """Where ``x`` rounds (to nearest, the exponent unbounded) beyond ``fmt``'s largest."""
    spec = FORMATS[fmt]
    with np.errstate(invalid="ignore", over="ignore"):
        rounded = np.where(np.isfinite(x), round_bits(np.nan_to_num(x), spec.mantissa_bits + 1), x)
        return np.abs(rounded) > spec.largest


def cast(x: npt.ArrayLike, fmt: str, convention: str | None = None) -> Float:
    """``x`` rounded to ``fmt`` (float64), values beyond its range following ``convention``
    (default: the format's own, :func:`convention_of`; ``"kept"``: ``x`` as it is)."""
    _check_format(fmt, "fmt")
    wide = np.asarray(x, dtype=np.float64)
    convention = convention_of(fmt) if convention is None else convention
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if convention == "kept":
        return wide
    beyond = _beyond(wide, fmt)
    inside = np.asarray(round_to(np.where(beyond, 0.0, wide), fmt), dtype=np.float64)
    largest = FORMATS[fmt].largest
    over = {"nan": np.full_like(wide, np.nan), "inf": np.copysign(np.inf, wide),
            "saturate": np.copysign(largest, wide)}[convention]  # fmt: skip
    return np.where(beyond, over, inside)


@dataclass(frozen=True)
class OverflowProblem:
    """Operands reaching beyond their formats, and the results each convention gives.

    Attributes
    ----------
    id : str
        ``overflow:`` and the results' dtype and the operands' formats.
    dtype : str
        The results' dtype; the operands are handed over in it, wide.
    formats : dict
        Each operand's format (``input``, ``weight``, ``grad_output``).
    inputs : dict
        The operands (and ``bias``) as the kernel is handed them, in the storage dtype.
    kwargs : dict
        conv1d's keyword arguments.
    expected : dict
        The exact results from the operands cast by their formats' conventions, rounded
        to ``dtype`` (NaN and infinities where those give them).
    magnitude : dict
        Per result, the sum of the terms' magnitudes, scaled, the operands saturated (the
        finite results' yardstick).
    """

    id: str
    dtype: str
    formats: dict[str, str]
    inputs: dict[str, npt.NDArray[Any]]
    kwargs: dict[str, Any]
    expected: dict[str, Float]
    magnitude: dict[str, Float]

    def results_under(self, conventions: Mapping[str, str]) -> dict[str, Float]:
        """The results if each format named in ``conventions`` followed that convention."""
        return _results(self, conventions)


def overflow_problem(dtype: str, formats: Mapping[str, str], seed: int = 0) -> OverflowProblem:
    """The problem for results in ``dtype`` and operands in ``formats`` (operand name to
    format; those whose range the dtype does not exceed are left out)."""
    if dtype not in _DTYPE_LARGEST:
        raise ValueError(f"dtype must be one of {list(_DTYPE_LARGEST)}, got {dtype!r}")
    if not isinstance(formats, Mapping):
        raise TypeError(f"formats must map operand names to formats, got {formats!r}")
    for name, fmt in formats.items():
        if name not in ("input", "weight", "grad_output"):
            raise ValueError(f"formats: operand must be input, weight or grad_output, got {name!r}")
        _check_format(fmt, f"formats[{name!r}]")
    formats = {name: fmt for name, fmt in formats.items()
               if FORMATS[fmt].largest < _DTYPE_LARGEST[dtype]}  # fmt: skip
    if not formats:
        raise ValueError(f"no operand format narrower in range than {dtype}: nothing overflows")
    rng = np.random.default_rng(seed)
    n, c, o = SHAPE["batch"], SHAPE["in_channels"], SHAPE["out_channels"]
    length, k = SHAPE["length"], SHAPE["kernel_size"]
    out_length = length - k + 1
    shapes = {"input": (n, c, length), "weight": (o, c, k), "bias": (o,),
              "grad_output": (n, o, out_length)}  # fmt: skip
    storage = np.dtype(STORAGE.get(dtype, dtype))
    inputs: dict[str, npt.NDArray[Any]] = {}
    for name, shape in shapes.items():
        values = rng.standard_normal(shape)
        narrow = formats.get(name)
        if narrow is not None:
            big = min(2 * FORMATS[narrow].largest, _DTYPE_LARGEST[dtype])
            flat = values.reshape(-1)
            where = rng.choice(flat.size, OUTLIERS, replace=False)
            flat[where] = big * np.where(np.arange(OUTLIERS) % 2 == 0, 1.0, -1.0)
        values = values.astype(storage)
        if dtype == "bfloat16":
            values = round_to(values, "bfloat16")
        inputs[name] = values
    tokens = "_".join(f"{name}={fmt}" for name, fmt in formats.items())
    exact = _evaluate(_cast_inputs(inputs, formats, {}), KWARGS)
    saturated = {fmt: "saturate" for fmt in formats.values()}
    magnitudes = {name: np.abs(v) for name, v in _cast_inputs(inputs, formats, saturated).items()}
    return OverflowProblem(
        id=f"overflow:{dtype}_{tokens}",
        dtype=dtype,
        formats=formats,
        inputs=inputs,
        kwargs=dict(KWARGS),
        expected={name: _rounded(value, dtype) for name, value in exact.items()},
        magnitude=_evaluate(magnitudes, KWARGS),
    )


def _cast_inputs(
    inputs: Mapping[str, npt.NDArray[Any]],
    formats: Mapping[str, str],
    conventions: Mapping[str, str],
) -> dict[str, Float]:
    """The operands cast to their formats, each format by ``conventions`` or its own."""
    cast_inputs = {}
    for name, value in inputs.items():
        fmt = formats.get(name)
        wide = np.asarray(value, dtype=np.float64)
        if fmt is not None:
            wide = cast(wide, fmt, conventions.get(fmt))
        cast_inputs[name] = wide
    return cast_inputs


def _evaluate(x: dict[str, Float], kwargs: dict[str, Any]) -> dict[str, Float]:
    with np.errstate(all="ignore"):
        output = textbook.conv1d(x["input"], x["weight"], x["bias"], **kwargs)
        grads = textbook.conv1d_backward(x["grad_output"], x["input"], x["weight"], x["bias"],
                                         **kwargs)  # fmt: skip
    return {"output": np.asarray(output), "grad_input": np.asarray(grads[0]),
            "grad_weight": np.asarray(grads[1]), "grad_bias": np.asarray(grads[2])}  # fmt: skip


def _rounded(values: Float, dtype: str) -> Float:
    with np.errstate(all="ignore"):
        if dtype == "bfloat16":
            return np.asarray(round_to(values, "bfloat16"), dtype=np.float64)
        return values.astype(dtype).astype(np.float64)


def _results(problem: OverflowProblem, conventions: Mapping[str, str]) -> dict[str, Float]:
    exact = _evaluate(_cast_inputs(problem.inputs, problem.formats, conventions), problem.kwargs)
    return {name: _rounded(value, problem.dtype) for name, value in exact.items()}


def _kinds(values: Float) -> npt.NDArray[np.int8]:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    kinds = np.zeros(values.shape, dtype=np.int8)
    kinds[np.isnan(values)] = 1
    kinds[values == np.inf] = 2
    kinds[values == -np.inf] = 3
    return kinds


def _agrees(problem: OverflowProblem, results: Mapping[str, Float],
            expected: Mapping[str, Float]) -> list[str]:  # fmt: skip
    """The arrays of ``results`` that differ from ``expected``: in where their NaN and
    infinities lie, or by more than :data:`UNITS` units of rounding elsewhere."""
    u = UNIT_ROUNDOFF[problem.dtype]
    wrong = []
    for name, value in results.items():
        want = expected[name]
        kinds = _kinds(want)
        if not np.array_equal(_kinds(value), kinds):
            wrong.append(name)
            continue
        finite = kinds == 0
        with np.errstate(all="ignore"):
            error = np.abs(value[finite] - want[finite])
            allowed = UNITS * u * problem.magnitude[name][finite] + 2.0**-140
        if np.any(~(error <= allowed)):
            wrong.append(name)
    return wrong


def _describe_kinds(name: str, value: Float, want: Float) -> str:
    got, should = _kinds(value), _kinds(want)
    words = ["finite", "NaN", "+inf", "-inf"]
    differ = got != should
    if not differ.any():
        return f"{name}: finite results off"
    index = tuple(int(i) for i in np.argwhere(differ)[0])
    return (f"{name}: {int(differ.sum())} of {differ.size} results {words[int(got[index])]} "
            f"where {words[int(should[index])]} belongs (first at {list(index)})")  # fmt: skip


@dataclass(frozen=True)
class OverflowFinding:
    """How a kernel's results differ from the overflow conventions' (``differences``), and
    the convention named as their likely cause."""

    differences: str
    cause: str


def judge_overflow(
    problem: OverflowProblem, results: Mapping[str, npt.ArrayLike]
) -> OverflowFinding | None:
    """None when ``results`` (any of output, grad_input, grad_weight, grad_bias) follow
    the formats' overflow conventions; else what differs, and the convention the kernel
    follows instead when one explains every array."""
    given = {}
    for name, value in results.items():
        if name not in problem.expected:
            raise ValueError(f"results: {name!r} is none of {list(problem.expected)}")
        array = np.asarray(value, dtype=np.float64)
        if array.shape != problem.expected[name].shape:
            raise ValueError(
                f"results[{name!r}] has shape {array.shape}, expected "
                f"{problem.expected[name].shape}"
            )
        given[name] = array
    wrong = _agrees(problem, given, problem.expected)
    if not wrong:
        return None
    text = "; ".join(_describe_kinds(n, given[n], problem.expected[n]) for n in wrong)
    return OverflowFinding(text, _named(problem, given))


def _named(problem: OverflowProblem, given: Mapping[str, Float]) -> str:
    """The conventions that give the kernel's results: one for every format, or another
    for a single format; else that none does. Only the formats of operands the given
    results read are named (a forward alone shows nothing of grad_output's)."""
    read = {op for name in given for op in _OPERANDS[name]}
    formats = sorted({fmt for op, fmt in problem.formats.items() if op in read})
    tries: list[dict[str, str]] = []
    for convention in CONVENTIONS:
        tries.append({fmt: convention for fmt in formats})
    for fmt in formats:
        for convention in CONVENTIONS:
            tries.append({fmt: convention})
    for conventions in tries:
        changed = {f: c for f, c in conventions.items() if c != convention_of(f)}
        if not changed:
            continue
        if not _agrees(problem, given, problem.results_under(conventions)):
            return "; ".join(
                f"values beyond {fmt}'s range ({FORMATS[fmt].largest:g}) {_WORDS[c]} where "
                f"the format {_OWN_WORDS[convention_of(fmt)]}"
                for fmt, c in changed.items()
            )
    return (
        f"{NO_CAUSE} (no overflow convention, NaN, inf, saturation or no cast, gives these results)"
    )
