"""``assert_conv1d``: hold a conv1d kernel to the golden cases and drawn problems in one call."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import golden
from ..golden import Fixture
from ..golden.fixture import build
from ..golden.suite import FULL_DTYPES, CaseSpec
from .diagnosis import NO_CAUSE, diagnose

__all__ = ["ConformanceReport", "assert_conv1d", "to_numpy"]

NUMPY_DTYPES = FULL_DTYPES  # the dtypes NumPy has: every golden geometry comes in them


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy array from a torch, CuPy, JAX or NumPy array (bfloat16/complex32 widened)."""
    if hasattr(value, "detach"):  # torch
        value = value.detach()
        name = str(value.dtype)
        if name == "torch.bfloat16":
            value = value.float()
        elif name == "torch.complex32":
            import torch

            value = value.to(torch.complex64)
        value = value.resolve_conj().cpu()
        return np.asarray(value.numpy())
    if hasattr(value, "get") and type(value).__module__.startswith("cupy"):
        return np.asarray(value.get())
    array = np.asarray(value)
    if array.dtype.name == "bfloat16":
        return array.astype(np.float32)
    return array


@dataclass
class ConformanceReport:
    """What a run measured: per dtype and array, the errors in units of rounding."""

    units: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)
    cases: int = 0

    def add(self, case: Fixture, reports: Sequence[Any]) -> None:
        self.cases += 1
        for report in reports:
            self.units.setdefault((case.dtype, report.name), []).append(report.max_units)

    def __str__(self) -> str:
        lines = [f"{self.cases} cases; error in units of rounding (u x error scale):"]
        lines.append(f"  {'dtype':<11} {'array':<12} {'largest':>9} {'median':>9}")
        for (dtype, name), values in sorted(self.units.items()):
            lines.append(
                f"  {dtype:<11} {name:<12} {max(values):>9.3g} {statistics.median(values):>9.3g}"
            )
        return "\n".join(lines)


def _call(
    case: Fixture,
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    to_array: Callable[[np.ndarray, str], Any],
) -> dict[str, Any]:
    inputs = {k: None if v is None else to_array(v, case.dtype) for k, v in case.inputs.items()}
    kwargs = case.kwargs
    results = {"output": forward(inputs["input"], inputs["weight"], inputs["bias"], **kwargs)}
    if backward is not None:
        grads = backward(inputs["grad_output"], inputs["input"], inputs["weight"], inputs["bias"],
                         **kwargs)  # fmt: skip
        results.update(zip(("grad_input", "grad_weight", "grad_bias"), grads, strict=False))
    storage = np.dtype(case.storage_dtype)
    converted = {}
    for name, value in results.items():
        if value is None or name not in case.expected:
            continue
        array = to_numpy(value)
        if case.dtype in ("bfloat16", "complex32"):
            array = array.astype(storage)
        converted[name] = array
    return converted


def _check(
    case: Fixture,
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None,
    to_array: Callable[[np.ndarray, str], Any],
    precision: str,
    report: ConformanceReport,
) -> str | None:
    """One case: None when it passes, else a readable failure with its likely cause."""
    try:
        results = _call(case, forward, backward, to_array)
        reports = golden.compare(case, precision, **results)
    except Exception as error:  # the kernel's own failure is a finding, not a crash of ours
        return f"{case.id}: the kernel raised {type(error).__name__}: {error}"
    report.add(case, reports)
    failing = [r for r in reports if not r.passed]
    if not failing:
        return None
    lines = [r.describe(case.id) for r in failing]
    cause = diagnose(case, results, [r.name for r in failing], precision)
    report.causes.append(cause)
    lines.append(f"  likely cause: {cause}")
    return "\n".join(lines)


def _default_to_array(array: np.ndarray, dtype: str) -> Any:
    return array


def assert_conv1d(
    forward: Callable[..., Any],
    backward: Callable[..., Any] | None = None,
    *,
    dtypes: Iterable[str] | None = None,
    filter: str | None = None,
    golden_dir: str | None = None,
    precision: str = "exact",
    to_array: Callable[[np.ndarray, str], Any] | None = None,
    drawn: int = 20,
    seed: int = 0,
    cases: Iterable[CaseSpec | str] | None = None,
) -> ConformanceReport:
    """Hold a conv1d implementation to uscale_ref: every golden case, then drawn problems.

    Parameters
    ----------
    forward : callable
        ``forward(input, weight, bias, stride=, padding=, dilation=, groups=,
        constraint=, scale_power=)``: upstream's signature.
    backward : callable, optional
        ``backward(grad_output, input, weight, bias, **same keywords)`` returning
        ``(grad_input, grad_weight, grad_bias)``, as :func:`uscale_ref.conv1d_backward`.
    dtypes : iterable of str, optional
        Only cases of these dtypes (default: float16, float32, float64,
        complex64, complex128; ``"bfloat16"`` and ``"complex32"`` on request).
    filter : str, optional
        A glob on case ids, e.g. ``"*_same_*"``.
    golden_dir : str, optional
        Another folder of golden cases.
    precision : ``"exact"`` or ``"tf32"``
        See :func:`uscale_ref.golden.allowed_units`.
    to_array : callable, optional
        ``to_array(numpy_array, dtype_name)`` gives the kernel its arrays in
        its own library and device (e.g. ``lambda a, d: torch.tensor(a,
        device="cuda")``); results come back through :func:`to_numpy`.
    drawn : int
        How many random problems (Hypothesis-drawn when Hypothesis is
        installed) to run after the golden cases; 0 for none.
    seed : int
        Makes the drawn problems reproducible.
    cases : iterable of CaseSpec or str, optional
        Run these instead of the golden suite: a :class:`~uscale_ref.golden.CaseSpec`
        (your own shape and arguments; its exact expected values are computed
        here, in memory) or a case id of ``golden_dir``. ``dtypes`` and
        ``filter`` then apply to the drawn problems only.

    Returns
    -------
    ConformanceReport
        The largest and median error per dtype and array, in units of
        rounding: what the kernel's summation order costs.

    Raises
    ------
    AssertionError
        Listing every failing case, the worst element of each failing array,
        and a line ``likely cause: ...`` naming the classic mistake that
        explains it (or "no single known mistake explains this").
    """
    wanted = tuple(dtypes) if dtypes is not None else NUMPY_DTYPES
    convert = to_array or _default_to_array
    report = ConformanceReport()
    failures = []
    chosen = (
        [golden.load(case_id, golden_dir) for case_id in _case_ids(golden_dir, wanted, filter)]
        if cases is None
        else [_own_case(case, golden_dir) for case in cases]
    )
    for case in chosen:
        failure = _check(case, forward, backward, convert, precision, report)
        if failure:
            failures.append(failure)
    for case in _drawn_cases(drawn, seed, [d for d in wanted if d in NUMPY_DTYPES]):
        failure = _check(case, forward, backward, convert, precision, report)
        if failure:
            failures.append(failure)
    report.failures = failures
    if failures:
        summary = f"{len(failures)} of {report.cases or len(failures)} cases failed"
        causes = {c for c in report.causes if c != NO_CAUSE}
        if len(causes) == 1 and len(report.causes) == len(failures):
            summary += f"; every failure is explained by one mistake: {causes.pop()}"
        raise AssertionError("\n".join([summary, *failures, "", str(report)]))
    return report


def _own_case(case: CaseSpec | str, golden_dir: str | None) -> Fixture:
    """A case given by the caller: built in memory from a spec, or loaded by id."""
    if isinstance(case, CaseSpec):
        arrays, metadata = build(case)
        return Fixture(id=case.id, metadata=metadata, arrays=arrays)
    if isinstance(case, str):
        return golden.load(case, golden_dir)
    raise TypeError(f"cases must hold CaseSpec objects or case ids, got {type(case).__name__}")


def _case_ids(golden_dir: str | None, dtypes: Sequence[str], pattern: str | None) -> list[str]:
    if golden_dir is None:
        return golden.cases(dtype=[d for d in dtypes if d in golden.suite.DTYPES], filter=pattern)
    import fnmatch
    from pathlib import Path

    from ..golden.store import _read_manifest  # a folder's own cases

    entries = _read_manifest(Path(golden_dir))["cases"]
    return [
        e["id"]
        for e in entries
        if e.get("dtype") in dtypes and (pattern is None or fnmatch.fnmatchcase(e["id"], pattern))
    ]


def _drawn_cases(count: int, seed: int, dtypes: Sequence[str]) -> list[Fixture]:
    """``count`` random problems with exact expected results, as in-memory golden cases."""
    if count <= 0 or not dtypes:
        return []
    try:
        from .strategies import draw_specs
    except ImportError:  # Hypothesis is not installed: the golden cases only
        return []

    cases = []
    for spec in draw_specs(count, seed, dtypes):
        arrays, metadata = build(spec)
        cases.append(Fixture(id=f"drawn:{spec.id}", metadata=metadata, arrays=arrays))
    return cases
