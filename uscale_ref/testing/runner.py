"""``assert_conv1d``: hold a conv1d kernel to the golden cases and drawn problems in one call."""

from __future__ import annotations

import fnmatch
import numbers
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import golden
from .._backend import dtype_name
from ..golden import Fixture
from ..golden.fixture import build
from ..golden.resources import check_memory, to_run
from ..golden.store import _read_manifest
from ..golden.suite import DTYPES, FULL_DTYPES, CaseSpec
from ..tolerance.rule import (
    CHECKS,
    check_accumulate,
    check_algorithm,
    check_precision,
    check_rounding,
    check_skip,
)
from ..verdict import CaseVerdict, judge
from ..verdict.diagnosis import NO_CAUSE, explain
from ..verdict.picture import picture_name, prepare_folder, require_matplotlib
from ..verdict.reference import correct_results
from ..verdict.report import with_reference
from .drawing import SIZES, _options, draw_specs, dtype_list
from .overflow import OverflowProblem, judge_overflow, overflow_problem

__all__ = ["ConformanceReport", "assert_conv1d", "to_numpy"]

NUMPY_DTYPES = FULL_DTYPES  # the dtypes NumPy has: every golden geometry comes in them
_TF32_DTYPES = ("float32", "complex64")


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy array from a torch, CuPy, JAX, array-api-strict or NumPy array.

    bfloat16 becomes float32 and complex32 complex64 (exactly); a torch
    tensor's lazy conjugate or negation is applied; an array on another
    device is copied to the host.
    """
    if hasattr(value, "detach") and type(value).__module__.startswith("torch"):
        import torch

        value = value.detach()
        if value.dtype == torch.bfloat16:
            value = value.float()
        elif value.dtype == torch.complex32:
            value = value.to(torch.complex64)
        value = value.resolve_conj().resolve_neg().cpu()
        return np.asarray(value.numpy())
    module = type(value).__module__
    if module.startswith("cupy") and hasattr(value, "get"):
        return np.asarray(value.get())
    if module.startswith("array_api_strict") and hasattr(value, "to_device"):
        import array_api_strict

        value = value.to_device(array_api_strict.Device("CPU_DEVICE"))
    array = np.asarray(value)
    if array.dtype.name == "bfloat16":
        return array.astype(np.float32)
    return array


def _dtype_of(value: Any) -> str:
    """The name of an array's dtype in any library (``"float32"``, ``"bfloat16"``, ...), or
    the type's name for something that is no array."""
    dtype = getattr(value, "dtype", None)
    return type(value).__name__ if dtype is None else dtype_name(dtype)


def _message(error: BaseException) -> str:
    """``Type: message`` even when the exception's own ``__str__`` fails."""
    try:
        text = str(error)
    except Exception:  # a kernel's exception may be broken too
        text = "<its message could not be printed>"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass
class ConformanceReport:
    """What a run measured: per dtype and array, the errors, the precision and the bias.

    Attributes
    ----------
    units : dict
        ``(dtype, array name)`` to the worst error of each case, in units of
        rounding (``u * error_scale``, ``u`` the output format's).
    bits : dict
        ``(dtype, array name)`` to the precision of each case's array, in
        significant bits (inf where it is exact).
    tile_bits : dict
        The same for each case's least precise tile.
    bias_z : dict
        The same for the errors' bias, in standard errors from the allowed values.
    failures : list of str
        The failure text of each failing case.
    causes : list of str
        The likely cause named for each failing comparison.
    verdicts : list of CaseVerdict
        Every judged case, for :meth:`plot`.
    pictures : list of Path
        The pictures drawn of failing cases (``plot=`` of :func:`assert_conv1d`).
    cases : int
        How many cases ran.
    """

    units: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    bits: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    tile_bits: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    bias_z: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    verdicts: list[CaseVerdict] = field(default_factory=list)
    pictures: list[Path] = field(default_factory=list)
    cases: int = 0

    def add(self, case: Fixture, verdict: CaseVerdict) -> None:
        self.verdicts.append(verdict)
        for report in verdict.arrays:
            key = (case.dtype, report.name)
            self.units.setdefault(key, []).append(report.max_units)
            self.bits.setdefault(key, []).append(report.precision.bits)
            self.tile_bits.setdefault(key, []).append(report.least_tile_bits)
            self.bias_z.setdefault(key, []).append(report.bias.z)

    def plot(self, directory: str | Path) -> list[Path]:
        """Draw every judged case's picture into ``directory`` (one PNG per case)."""
        folder = prepare_folder(directory, "directory")
        return [v.plot(folder / picture_name(v.case_id)) for v in self.verdicts]

    def __str__(self) -> str:
        lines = [
            f"{self.cases} cases; errors in units of rounding (u x error scale), precision in "
            "significant bits (lowest over the cases, and of their least precise tiles), bias "
            "in standard errors (largest):"
        ]
        lines.append(
            f"  {'dtype':<11} {'array':<12} {'largest':>9} {'median':>9} {'bits':>6} "
            f"{'tile':>6} {'bias':>6}"
        )
        for (dtype, name), values in sorted(self.units.items()):
            key = (dtype, name)
            bits, tile = min(self.bits[key]), min(self.tile_bits[key])
            lines.append(
                f"  {dtype:<11} {name:<12} {max(values):>9.3g} {statistics.median(values):>9.3g} "
                f"{_bits_column(bits):>6} {_bits_column(tile):>6} {max(self.bias_z[key]):>6.2g}"
            )
        return "\n".join(lines)


def _bits_column(bits: float) -> str:
    return "exact" if bits == float("inf") else f"{bits:.1f}"


class _Wrong(Exception):
    """A result of the wrong kind (None, wrong shape or dtype, missing): the kernel's fault."""


_GRADS = ("grad_input", "grad_weight", "grad_bias")


def _call(
    case: Fixture | OverflowProblem,
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    to_array: Callable[[np.ndarray, str], Any],
) -> dict[str, Any]:
    """The kernel's results for ``case`` (a case or an overflow problem), as given (not
    converted)."""

    def fresh() -> dict[str, Any]:
        # Copies for each call: a kernel that uses its inputs as scratch space after computing
        # changes neither the case nor what the next call sees.
        return {
            k: None if v is None else to_array(np.array(v, copy=True), case.dtype)
            for k, v in case.inputs.items()
        }

    kwargs = case.kwargs
    inputs = fresh()
    results = {"output": forward(inputs["input"], inputs["weight"], inputs["bias"], **kwargs)}
    if backward is not None:
        del inputs
        inputs = fresh()
        grads = backward(inputs["grad_output"], inputs["input"], inputs["weight"], inputs["bias"],
                         **kwargs)  # fmt: skip
        if isinstance(grads, (str, bytes)) or not isinstance(grads, Sequence) or len(grads) != 3:
            kind = "None" if grads is None else f"{type(grads).__name__}"
            if isinstance(grads, Sequence):
                kind += f" of length {len(grads)}"
            raise _Wrong(f"backward returned {kind}; expected (grad_input, grad_weight, grad_bias)")
        results.update(zip(_GRADS, grads, strict=True))
    return results


def _run(
    case: Fixture | OverflowProblem,
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    to_array: Callable[[np.ndarray, str], Any],
) -> dict[str, Any] | str:
    """The kernel's results for ``case``, or the failure of a kernel that raised or
    returned the wrong kind of thing."""
    try:
        return _call(case, forward, backward, to_array)
    except _Wrong as wrong:
        return f"{case.id}: {wrong}"
    except Exception as error:  # the kernel's own failure is a finding, not a crash of ours
        return f"{case.id}: the kernel raised {_message(error)}"


def _converted(case: Fixture, results: dict[str, Any]) -> dict[str, np.ndarray]:
    """The results as NumPy arrays after checking that each is there, of the case's dtype."""
    converted = {}
    for name, value in results.items():
        if name not in case.expected:
            continue  # grad_bias of a case without bias: anything (None, as autograd) goes
        if value is None:
            raise _Wrong(f"{name} is None; expected an array of dtype {case.dtype}")
        given = _dtype_of(value)
        if given != case.dtype:
            raise _Wrong(f"{name} has dtype {given}, expected {case.dtype}")
        array = to_numpy(value)
        if array.shape != case.result_shape(name):
            raise _Wrong(f"{name} has shape {array.shape}, expected {case.result_shape(name)}")
        converted[name] = array.astype(case.storage_dtype)
    return converted


@dataclass(frozen=True)
class _Options:
    """How results are judged, and where failing cases are drawn."""

    precision: str = "exact"
    accumulate: str | None = None
    skip: frozenset[str] | None = None
    plot: Path | None = None
    algorithm: str = "direct"
    rounding: str = "nearest"


def _check(
    case: Fixture,
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    to_array: Callable[[np.ndarray, str], Any],
    options: _Options,
    report: ConformanceReport,
) -> str | None:
    """One case: None when it passes, else a readable failure with its likely cause."""
    report.cases += 1
    precision = options.precision if case.dtype in _TF32_DTYPES else "exact"
    raw = _run(case, forward, backward, to_array)
    if isinstance(raw, str):
        return raw
    try:
        results = _converted(case, raw)
    except _Wrong as wrong:
        return f"{case.id}: {wrong}"
    skip = None if options.skip is None else sorted(options.skip)
    with np.errstate(all="ignore"):
        verdict = judge(case, results, precision, options.accumulate, skip, keep=True,
                        algorithm=options.algorithm, rounding=options.rounding)  # fmt: skip
        explain(verdict, case, results, precision, options.accumulate, options.plot is not None)
        if options.plot is not None and verdict.passed and not case.compact:
            # A correct evaluation's error histogram beside the kernel's, in the picture.
            references = correct_results(case)
            verdict.arrays = [with_reference(case, r, references[r.name]) for r in verdict.arrays]
    report.add(case, verdict)
    if verdict.passed:
        return None
    cause = verdict.cause or NO_CAUSE
    report.causes.append(cause)
    lines = [verdict.describe(), f"  likely cause: {cause}"]
    if options.plot is not None:
        picture = _draw(verdict, options.plot)
        if picture is not None:
            report.pictures.append(picture)
            lines.append(f"  picture: {picture}")
    return "\n".join(lines)


def _draw(verdict: CaseVerdict, folder: Path) -> Path | None:
    return verdict.plot(prepare_folder(folder, "plot") / picture_name(verdict.case_id))


def _default_to_array(array: np.ndarray, dtype: str) -> Any:
    if dtype == "bfloat16":
        import ml_dtypes  # checked by assert_conv1d before any case runs

        return array.astype(ml_dtypes.bfloat16)
    return array


def _counts(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def assert_conv1d(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None = None,
    *,
    dtypes: str | Iterable[str] | None = None,
    filter: str | None = None,
    golden_dir: str | Path | None = None,
    precision: str = "exact",
    to_array: Callable[[np.ndarray, str], Any] | None = None,
    drawn: int = 20,
    seed: int = 0,
    cases: Iterable[CaseSpec | str] | None = None,
    constraints: Iterable[str | None] | None = None,
    scale_powers: Iterable[Sequence[float]] | None = None,
    select: Callable[[CaseSpec], bool] | None = None,
    sizes: str = "small",
    accumulate: str | None = None,
    skip: str | Iterable[str] | None = None,
    plot: str | Path | None = None,
    algorithm: str = "direct",
    rounding: str = "nearest",
    cast: bool = False,
) -> ConformanceReport:
    """Hold a conv1d implementation to uscale_ref: every golden case, then drawn problems.

    Parameters
    ----------
    forward : callable
        ``forward(input, weight, bias, stride=, padding=, dilation=, groups=,
        constraint=, scale_power=)``: upstream's signature.
    backward : callable, optional
        ``backward(grad_output, input, weight, bias, **same keywords)`` returning
        ``(grad_input, grad_weight, grad_bias)``, as :func:`uscale_ref.conv1d_backward`
        (``grad_bias`` may be None when the case has no bias).
    dtypes : str or iterable of str, optional
        Only cases of these dtypes (default: float16, float32, float64,
        complex64, complex128; ``"bfloat16"`` and ``"complex32"`` on request:
        bfloat16 with the default ``to_array`` needs ``ml_dtypes``, complex32
        needs a ``to_array`` of a library that has it, such as torch).
    filter : str, optional
        A glob on the golden case ids, e.g. ``"*_same_*"``.
    golden_dir : str or path, optional
        Another folder of golden cases (for example your own, written by
        ``uscale-ref golden generate --case ...``).
    precision : ``"exact"`` or ``"tf32"``
        ``"tf32"``: the kernel rounds its float32 and complex64 multiplicands
        to TF32 (GPU convolutions with TF32 on); the verdict of those cases
        allows what that costs. Other dtypes are judged as usual.
    to_array : callable, optional
        ``to_array(numpy_array, dtype_name)`` gives the kernel its arrays in
        its own library and device (e.g. ``lambda a, d: torch.tensor(a,
        device="cuda")``); results come back through :func:`to_numpy`.
        bfloat16 and complex32 inputs arrive as float32 and complex64 arrays
        holding representable values: convert them to your library's dtype.
    drawn : int
        How many random problems to run after the golden cases; 0 for none.
    seed : int
        Makes the drawn problems reproducible.
    cases : iterable of CaseSpec or str, optional
        Run these instead of the golden suite: a :class:`~uscale_ref.golden.CaseSpec`
        (your own shape and arguments; its exact expected values are computed
        here, in memory) or a case id of ``golden_dir``, each in its own
        dtype. ``constraints``, ``scale_powers`` and ``select`` still apply;
        ``dtypes``, when given, must include the cases' dtypes.
    constraints : iterable of str or None, optional
        Only cases (golden and drawn) with one of these constraints, e.g.
        ``["to_output_scale"]`` for a kernel that implements only the default.
    scale_powers : iterable of three numbers, optional
        Only cases with one of these ``scale_power`` values.
    select : callable, optional
        ``select(spec) -> bool`` on each case's :class:`~uscale_ref.golden.CaseSpec`:
        any other restriction (e.g. ``lambda s: s.groups == 1``).
    sizes : ``"small"`` or ``"large"``
        The drawn problems' sizes: ``"large"`` crosses the tiles of real
        kernels (channels to a few hundred, lengths to thousands, kernels to
        31; about a second each to compute).
    accumulate : str, optional
        The format your kernel accumulates in, when it is not the default
        (float32 for float16, bfloat16 and complex32 cases, the case's dtype
        otherwise): ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``.
        A narrower one widens the bound to what such sums can cost.
    skip : str or iterable of str, optional
        Checks to switch off by name: ``"bound"`` (element-wise),
        ``"precision"`` (bits achieved per array, channel, item and tile of
        64 positions), ``"bias"`` (a scale error in the errors' mean).
    plot : str or path, optional
        A folder: a picture of each failing case (precision map and error
        histogram) is drawn there and named in the failure text; needs
        matplotlib.
    algorithm : ``"direct"``, ``"fft"`` or ``"winograd"``
        ``"fft"``: your kernel convolves by transforms (an FFT); its errors
        are then bounded by the rows' norms, not element by element, and the
        verdict allows that. ``"winograd"``: your kernel uses minimal filtering
        (Winograd's F(m, r)) on tiles of up to eight outputs; its errors are
        bounded by the norms of each tile's inputs
        (:mod:`uscale_ref.verdict.algorithm`).
    rounding : ``"nearest"`` or ``"stochastic"``
        ``"stochastic"``: your kernel rounds its results up or down at random,
        without bias (as unit_scaling's own formats do by default); each result
        may then miss by a whole unit in the last place, and the bias check
        expects no bias at all.
    cast : bool
        Your kernel casts its operands to their formats itself (a fused cast):
        it is handed a mixed-precision case's operands in the results' dtype
        and rounds each to its format. Besides the cases, a small problem per
        combination of dtype and formats among them then brings operands
        beyond the formats' ranges, whose results must follow each format's
        overflow convention: NaN in ``float8_e4m3fn``, ±inf in
        ``float8_e5m2`` and ``float16``, saturation in unit_scaling's formats
        (:mod:`uscale_ref.testing.overflow`). A unit-scaled case never
        reaches those values.

    Returns
    -------
    ConformanceReport
        Per dtype and array: the largest and median error in units of
        rounding, the lowest precision in bits (of arrays and of tiles) and
        the largest bias in standard errors; :meth:`ConformanceReport.plot`
        draws every case.

    Raises
    ------
    AssertionError
        Listing every failing case, the worst element of each failing array,
        how many elements fail and where, and a line ``likely cause: ...``
        naming the classic mistake that explains it (or "no single known
        mistake explains this").
    TypeError, ValueError
        For arguments of the call itself (an unknown dtype or precision, a
        filter that leaves nothing to check, ...), before any case runs.
    """
    __tracebackhide__ = True  # pytest shows the message, not this code
    if not callable(forward):
        raise TypeError(f"forward must be callable, got {type(forward).__name__}")
    if backward is not None and not callable(backward):
        raise TypeError(f"backward must be callable or None, got {type(backward).__name__}")
    check_precision(precision)
    accumulate = check_accumulate(accumulate)
    check_algorithm(algorithm)
    check_rounding(rounding)
    checks = check_skip(skip)
    if plot is not None and not isinstance(plot, (str, Path)):
        raise TypeError(f"plot must be a folder (str or Path), got {type(plot).__name__}")
    if plot is not None:
        require_matplotlib("plot")
        prepare_folder(plot, "plot")
    if sizes not in SIZES:
        raise ValueError(f"sizes must be one of {SIZES}, got {sizes!r}")
    drawn, seed = _counts(drawn, "drawn"), _counts(seed, "seed")
    own = None if cases is None else [_own(c, golden_dir) for c in cases]
    if own is not None and dtypes is None:
        wanted = sorted({case.dtype for case in own}, key=list(DTYPES).index)
        drawn_dtypes = dtype_list(None, NUMPY_DTYPES)
    else:
        wanted = dtype_list(dtypes, NUMPY_DTYPES)
        drawn_dtypes = wanted
    if own is not None and dtypes is not None:
        outside = sorted({case.dtype for case in own} - set(wanted))
        if outside:
            raise ValueError(
                f"cases: {', '.join(c.id for c in own if c.dtype in outside)} "
                f"{'is' if len(outside) == 1 else 'are'} {', '.join(outside)}, which "
                f"dtypes={wanted} leaves out; name {', '.join(outside)} in dtypes or leave "
                "dtypes unset to check each case in its own dtype"
            )
    _check_conversions([*wanted, *(drawn_dtypes if drawn else [])], to_array)
    if constraints is not None:
        constraints = list(constraints)
    if scale_powers is not None:
        scale_powers = list(scale_powers)
    chosen_constraints, powers = _options(constraints, scale_powers)

    def keep(spec: CaseSpec) -> bool:
        return (
            (own is not None or spec.dtype in wanted)
            and (constraints is None or (spec.constraint or None) in chosen_constraints)
            and (scale_powers is None or tuple(spec.scale_power) in powers)
            and (select is None or bool(select(spec)))
        )

    chosen = (
        _golden_cases(golden_dir, wanted, filter, keep)
        if own is None
        else [case.fixture() for case in own if keep(case.spec)]
    )
    if not isinstance(cast, bool):
        raise TypeError(f"cast must be True or False, got {cast!r}")
    problems = _overflow_problems(chosen) if cast else []
    if cast and not problems:
        raise ValueError(
            "cast=True: no chosen case names operand formats narrower in range than its "
            "dtype (such as input='float8_e4m3fn'): there is no cast to check"
        )
    for case in chosen:
        if case.compact:  # the kernel computes the whole layer: refuse it here, not blame it
            check_memory(case.spec, "running a kernel on it", to_run(case.spec))
    drawn_cases = [
        _fixture(spec)
        for spec in draw_specs(drawn, seed, drawn_dtypes, sizes, chosen_constraints, powers, select)
    ]
    if not chosen and not drawn_cases:
        raise ValueError(
            "nothing to check: no golden case matches "
            f"(dtypes={wanted}, filter={filter!r}, constraints, scale_powers, select) "
            f"and drawn={drawn} gave no problem"
        )
    convert = to_array or _default_to_array
    skipped = frozenset(CHECKS) - checks
    options = _Options(precision, accumulate, skipped, None if plot is None else Path(plot),
                       algorithm, rounding)  # fmt: skip
    report = ConformanceReport()
    failures = []
    for case in [*chosen, *drawn_cases]:
        failure = _check(case, forward, backward, convert, options, report)
        if failure:
            failures.append(failure)
    for problem in problems:
        failure = _check_overflow(problem, forward, backward, convert, report)
        if failure:
            failures.append(failure)
    report.failures = failures
    if failures:
        summary = f"{len(failures)} of {report.cases} cases failed"
        known = {cause for cause in report.causes if NO_CAUSE not in cause}
        if len(known) == 1 and len(report.causes) == len(failures) == len(
            [c for c in report.causes if NO_CAUSE not in c]
        ):
            summary += f"; every failure is explained by one mistake: {known.pop()}"
        raise AssertionError("\n".join([summary, *failures, "", str(report)]))
    return report


def _overflow_problems(cases: Sequence[Fixture]) -> list[OverflowProblem]:
    """One overflow problem per dtype and operand formats among ``cases`` (those whose
    formats can overflow in their dtype)."""
    problems: dict[tuple[str, tuple[tuple[str, str], ...]], OverflowProblem] = {}
    for case in cases:
        formats = case.spec.formats
        key = (case.dtype, tuple(sorted(formats.items())))
        if formats and key not in problems:
            try:
                problems[key] = overflow_problem(case.dtype, formats)
            except ValueError:
                continue  # no format narrower in range than the dtype
    return list(problems.values())


def _check_overflow(
    problem: OverflowProblem,
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    to_array: Callable[[np.ndarray, str], Any],
    report: ConformanceReport,
) -> str | None:
    """The overflow problem: None when the kernel's results follow the conventions."""
    report.cases += 1
    raw = _run(problem, forward, backward, to_array)
    if isinstance(raw, str):
        return raw
    results = {}
    for name, value in raw.items():
        want = problem.expected[name].shape
        given = _dtype_of(value)
        if given != problem.dtype:
            return f"{problem.id}: {name} has dtype {given}, expected {problem.dtype}"
        array = to_numpy(value)
        if array.shape != want:
            return f"{problem.id}: {name} has shape {array.shape}, expected {want}"
        results[name] = array
    finding = judge_overflow(problem, results)
    if finding is None:
        return None
    report.causes.append(finding.cause)
    return f"{problem.id}: {finding.differences}\n  likely cause: {finding.cause}"


def _check_conversions(dtypes: Sequence[str], to_array: Any) -> None:
    if to_array is not None:
        if not callable(to_array):
            raise TypeError(f"to_array must be callable, got {type(to_array).__name__}")
        return
    if "complex32" in dtypes:
        raise ValueError(
            "dtypes: complex32 cases need a to_array that makes complex32 arrays "
            "(NumPy has none), e.g. lambda a, d: torch.tensor(a).to(torch.complex32)"
        )
    if "bfloat16" in dtypes:
        try:
            import ml_dtypes  # noqa: F401
        except ImportError:
            raise ValueError(
                "dtypes: bfloat16 cases need ml_dtypes (pip install ml_dtypes) "
                "or a to_array that makes your library's bfloat16 arrays"
            ) from None


def _fixture(spec: CaseSpec) -> Fixture:
    arrays, metadata = build(spec)
    return Fixture(id=f"drawn:{spec.id}", metadata=metadata, arrays=arrays)


@dataclass(frozen=True)
class _Own:
    """A case given by the caller: its spec, and its fixture when it was loaded by id."""

    spec: CaseSpec
    loaded: Fixture | None = None

    @property
    def dtype(self) -> str:
        return self.spec.dtype

    @property
    def id(self) -> str:
        return self.spec.id if self.loaded is None else self.loaded.id

    def fixture(self) -> Fixture:
        """The loaded fixture, or one built in memory from the spec."""
        if self.loaded is not None:
            return self.loaded
        arrays, metadata = build(self.spec)
        return Fixture(id=self.spec.id, metadata=metadata, arrays=arrays)


def _own(case: CaseSpec | str, golden_dir: str | Path | None) -> _Own:
    if isinstance(case, CaseSpec):
        return _Own(case)
    if isinstance(case, str):
        fixture = golden.load(case, golden_dir)
        return _Own(fixture.spec, fixture)
    raise TypeError(f"cases must hold CaseSpec objects or case ids, got {type(case).__name__}")


def _golden_cases(
    golden_dir: str | Path | None,
    dtypes: Sequence[str],
    pattern: str | None,
    keep: Callable[[CaseSpec], bool],
) -> list[Fixture]:
    """The cases of a golden folder of these dtypes, matching ``pattern``, that ``keep`` takes."""
    ids = _case_ids(golden_dir, dtypes, pattern)
    fixtures = [golden.load(case_id, golden_dir) for case_id in ids]
    return [fixture for fixture in fixtures if keep(fixture.spec)]


def _case_ids(
    golden_dir: str | Path | None, dtypes: Sequence[str] | None, pattern: str | None
) -> list[str]:
    """The ids a golden folder lists (default: the installed suite), by dtype and glob."""
    directory = Path(golden_dir) if golden_dir is not None else golden.default_dir()
    entries = _read_manifest(directory)["cases"]
    return [
        e["id"]
        for e in entries
        if (dtypes is None or e.get("dtype") in dtypes)
        and (pattern is None or fnmatch.fnmatchcase(e["id"], pattern))
    ]
