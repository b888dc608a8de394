"""The survey: every installed framework's conv1d judged over a plan of cases, in one table.

Each adapter (:mod:`.adapters`) runs on each case of the plan in each dtype it takes;
its forward and backward are judged apart (:func:`uscale_ref.verdict.judge`), and a
failing direction gets its likely cause (:func:`uscale_ref.verdict.diagnosis.explain`).
One row per adapter, dtype and direction gathers the cases: the verdict (``pass`` when
every case passes), the least precision in bits over the cases' arrays, and the causes
named, each with how many cases it explains. A framework that refuses a dtype is
``unsupported`` there (with its message), one that is not installed ``not installed``:
neither is a failure.
"""

from __future__ import annotations

import collections
import math
import os
import platform
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..golden import CaseSpec, Fixture
from ..golden import load as load_fixture
from .adapters import ADAPTERS, Adapter, missing
from .table import Row, Survey, verdict_text

__all__ = ["PLANS", "production_specs", "survey"]

#: The plans: the committed cases, or a few production shapes.
PLANS = ("small", "production")
#: The dtypes surveyed unless told otherwise.
DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128")
DIRECTIONS = ("forward", "backward")

#: Production shapes: (label, CaseSpec arguments less the dtype).
PRODUCTION: tuple[tuple[str, dict[str, Any]], ...] = (
    ("dense", {"batch_size": 8, "in_channels": 256, "length": 1024, "out_channels": 256,
               "kernel_size": 9, "padding": "same"}),
    ("depthwise", {"batch_size": 8, "in_channels": 512, "length": 4096, "out_channels": 512,
                   "kernel_size": 4, "padding": "same", "groups": 512}),
    ("strided", {"batch_size": 4, "in_channels": 256, "length": 2048, "out_channels": 256,
                 "kernel_size": 9, "stride": 2, "padding": 4}),
    ("dilated", {"batch_size": 4, "in_channels": 256, "length": 1024, "out_channels": 256,
                 "kernel_size": 5, "dilation": 3, "padding": "same"}),
)  # fmt: skip


def machine(adapters: Iterable[Adapter]) -> dict[str, str]:
    """The processor, Python, NumPy, uscale_ref and the version of each framework these
    adapters run on (or 'not installed')."""
    from .. import __version__

    facts = {"processor": _processor(), "python": platform.python_version(),
             "numpy": np.__version__, "uscale_ref": __version__}  # fmt: skip
    for chosen in sorted(adapters, key=lambda a: a.module):
        facts.setdefault(chosen.module, chosen.version())
    return facts


def _processor() -> str:
    """The CPU's model name and its bfloat16/AMX/AVX-512 flags (from /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name") and ":" in line:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")
    present = [f for f in wanted if f in flags]
    cores = os.cpu_count() or 0
    return f"{model}, {cores} cores" + (f" ({', '.join(present)})" if present else "")


def production_specs(dtypes: Iterable[str]) -> list[CaseSpec]:
    """The production plan's cases in these dtypes."""
    return [CaseSpec(dtype, **shape) for dtype in dtypes for _, shape in PRODUCTION]


def _plan(
    plan: str, dtypes: Sequence[str], golden_dir: str | Path | None, jobs: int,
    scheduler: str | None,
) -> dict[str, list[Fixture]]:  # fmt: skip
    """The plan's fixtures by dtype: the committed cases (or ``golden_dir``'s) for
    ``small``; for ``production``, its shapes, built into ``golden_dir`` once (with
    ``jobs`` processes or on ``scheduler``) and read from there afterwards, or built in
    memory without a folder."""
    from .. import golden

    by_dtype: dict[str, list[Fixture]] = {d: [] for d in dtypes}
    if plan == "small":
        for case_id in golden.cases(dtype=list(dtypes), golden_dir=golden_dir):
            fixture = load_fixture(case_id, golden_dir)
            if not fixture.spec.formats and not fixture.compact:  # one dtype throughout
                by_dtype[fixture.dtype].append(fixture)
        return by_dtype
    specs = production_specs(dtypes)
    if golden_dir is None:
        from ..golden.fixture import build

        for spec in specs:
            arrays, metadata = build(spec)
            by_dtype[spec.dtype].append(Fixture(id=spec.id, metadata=metadata, arrays=arrays))
        return by_dtype
    present = set(golden.cases(golden_dir=golden_dir)) if _has_manifest(golden_dir) else set()
    absent = [spec for spec in specs if spec.id not in present]
    if absent:
        golden.generate(golden_dir, specs=absent, jobs=jobs, scheduler=scheduler)
    for spec in specs:
        by_dtype[spec.dtype].append(load_fixture(spec.id, golden_dir))
    return by_dtype


def _has_manifest(folder: str | Path) -> bool:
    from ..golden.store import MANIFEST

    return (Path(folder) / MANIFEST).is_file()


def survey(
    adapters: Iterable[str] | None = None,
    dtypes: Iterable[str] | None = None,
    plan: str = "small",
    golden_dir: str | Path | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Survey:
    """Judge each adapter's conv1d (forward and backward) over a plan of cases.

    Parameters
    ----------
    adapters : iterable of str, optional
        Names of :data:`~uscale_ref.survey.ADAPTERS` (default: all; those not installed
        get a ``not installed`` row each).
    dtypes : iterable of str, optional
        Default float16, bfloat16, float32, float64, complex64, complex128.
    plan : ``"small"`` or ``"production"``
        The committed cases (seconds per framework), or production shapes: dense
        (8, 256, 1024, 256, 9), depthwise (8, 512, 4096, 512, 4), strided and dilated.
    golden_dir : str or path, optional
        ``small``: another folder's cases. ``production``: a folder the plan's fixtures
        are built into once and read from afterwards (without one they are built in
        memory on every run).
    jobs, scheduler : optional
        How the production fixtures are built (processes, or a dask scheduler), as
        ``uscale-ref golden generate`` builds them.
    progress : callable, optional
        Called with a line as each adapter and dtype finishes.
    """
    start = time.perf_counter()
    names = list(ADAPTERS) if adapters is None else list(adapters)
    for name in names:
        if name not in ADAPTERS:
            raise ValueError(f"frameworks: {name!r} is not one of {sorted(ADAPTERS)}")
    chosen = list(DTYPES) if dtypes is None else list(dtypes)
    for dtype in chosen:
        if dtype not in DTYPES:
            raise ValueError(f"dtypes: {dtype!r} is not one of {list(DTYPES)}")
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {PLANS}, got {plan!r}")
    fixtures = _plan(plan, chosen, golden_dir, jobs, scheduler)
    rows: list[Row] = []
    for name in names:
        chosen_adapter = ADAPTERS[name]
        reason = missing(chosen_adapter)
        kernels = None if reason is not None else chosen_adapter.kernels()
        for dtype in chosen:
            for direction in DIRECTIONS:
                if kernels is None:
                    rows.append(Row(name, dtype, direction, "not installed", note=reason or ""))
                elif dtype not in chosen_adapter.dtypes or (
                    direction == "backward" and kernels[1] is None
                ):
                    what = f"no {dtype}" if dtype not in chosen_adapter.dtypes else "no gradients"
                    rows.append(Row(name, dtype, direction, "unsupported", note=what))
                else:
                    rows.append(_judge_all(chosen_adapter, kernels, dtype, direction,
                                           fixtures[dtype]))  # fmt: skip
            if progress is not None:
                done = [r for r in rows if r.adapter == name and r.dtype == dtype]
                progress(f"{name} {dtype}: " + ", ".join(f"{r.direction} {verdict_text(r)}"
                                                        for r in done))  # fmt: skip
    return Survey(rows, machine(ADAPTERS[n] for n in names), plan, time.perf_counter() - start)


def _judge_all(
    chosen: Adapter, kernels: tuple[Any, Any], dtype: str, direction: str,
    fixtures: Sequence[Fixture],
) -> Row:  # fmt: skip
    row = Row(chosen.name, dtype, direction, "pass")
    causes: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}  # each cause's words (its figures left out): the first text
    least = math.inf
    refused: list[str] = []
    for fixture in fixtures:
        outcome = _judge_one(kernels, fixture, direction)
        if isinstance(outcome, _Refused):  # the framework refuses this dtype or arguments
            refused.append(outcome.message)
            continue
        verdict, bits = outcome
        row.cases += 1
        least = min(least, bits)
        if verdict is not None:
            row.failed += 1
            row.failing_cases.append(fixture.id)
            words = _FIGURES.sub("#", verdict)
            example.setdefault(words, verdict)
            causes[words] += 1
    if row.cases == 0:
        row.verdict = "unsupported" if fixtures else "no cases"
        row.note = refused[0] if refused else ""
        return row
    row.refused = len(refused)
    if refused:
        row.refusal = refused[0]
    row.bits = least
    row.causes = {example[words]: count for words, count in causes.most_common()}
    row.verdict = "fail" if row.failed else "pass"
    return row


#: Figures in a cause (sizes, uncertainties, bits, indices): causes that differ only in
#: them are counted together, under the first one's text.
_FIGURES = re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?")


@dataclass
class _Refused:
    message: str


def _judge_one(
    kernels: tuple[Any, Any], fixture: Fixture, direction: str
) -> tuple[str | None, float] | _Refused:
    """The cause of one case's failure in one direction (None when it passes) and its least
    precision, or the framework's refusal."""
    from ..testing.runner import to_numpy
    from ..verdict import judge
    from ..verdict.diagnosis import NO_CAUSE, explain

    forward, backward = kernels
    inputs = {k: None if v is None else _as_given(v, fixture.dtype)
              for k, v in fixture.inputs.items()}  # fmt: skip
    x, w, b = inputs["input"], inputs["weight"], inputs["bias"]
    try:
        with np.errstate(all="ignore"):
            if direction == "forward":
                given = {"output": forward(x, w, b, **fixture.kwargs)}
            else:
                grads = backward(inputs["grad_output"], x, w, b, **fixture.kwargs)
                given = dict(zip(("grad_input", "grad_weight", "grad_bias"), grads, strict=True))
    except Exception as error:  # the framework's own refusal: a dtype or argument it lacks
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return _Refused(f"{type(error).__name__}: {text[:160]}")
    results = {}
    for name, value in given.items():
        if name not in fixture.expected:
            continue
        array = to_numpy(value)
        given_dtype = getattr(value, "dtype", None)
        if str(given_dtype) != fixture.dtype and not (
            fixture.dtype == "bfloat16" and "bfloat16" in str(given_dtype)
        ):
            return (f"{name} came back as {given_dtype}, not {fixture.dtype}", -math.inf)
        results[name] = array.astype(fixture.storage_dtype)
    with np.errstate(all="ignore"):
        verdict = judge(fixture, results, keep=True)
        bits = min((r.precision.bits for r in verdict.arrays), default=math.inf)
        if verdict.passed:
            return None, bits
        explain(verdict, fixture, results)
    return verdict.cause or NO_CAUSE, bits


def _as_given(array: np.ndarray, dtype: str) -> np.ndarray:
    """A fixture's input as a kernel gets it: a fresh copy, bfloat16 as ml_dtypes'."""
    copy = np.array(array, copy=True)
    if dtype == "bfloat16":
        import ml_dtypes

        return copy.astype(ml_dtypes.bfloat16)
    return copy
