"""Building many cases: one after another, in parallel processes, or on a dask cluster.

Each case's bytes are a pure function of its spec, so whoever builds it, the
file is the same: :func:`built` hands the cases back in their given order
whatever order they finish in, and the one process that called
:func:`uscale_ref.golden.generate` writes every file. Before any work,
:func:`check_resources` compares what the cases need (memory to build the
largest, disk for all of them) with what the machine has, and says so
instead of failing halfway with NumPy's ``ArrayMemoryError``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..exact.points import WHOLE_ELEMENTS
from .errors import GoldenFileError
from .fixture import BUILD_STEPS, build, to_bytes
from .suite import CaseSpec

__all__ = ["built", "check_resources", "needs"]

Built = tuple[CaseSpec, bytes, dict[str, Any]]
GIB = 2**30


def _itemsize(spec: CaseSpec) -> int:
    return {"float16": 2, "float32": 4, "bfloat16": 4, "float64": 8, "complex64": 8,
            "complex32": 8, "complex128": 16}[spec.dtype]  # fmt: skip


def needs(spec: CaseSpec) -> tuple[int, int]:
    """About how much memory building ``spec`` takes, and the size of its file, in bytes.

    A whole fixture holds every input and result and a float64 error scale per
    result element; building it takes up to about four times that (measured: 3.6
    for a float32 layer, 3.2 for float64: the inputs' float64 copies and
    magnitudes, the float64 sums, the file's bytes). A compact one holds a few arrays of positions;
    building it draws and cuts whole inputs of up to
    :data:`~uscale_ref.exact.points.WHOLE_ELEMENTS` elements (about 60 bytes each)
    and works in blocks.
    """
    geometry = spec.geometry
    batch = spec.batch_size or 1
    inputs = {
        "input": batch * spec.in_channels * spec.length,
        "weight": math.prod(spec.weight_shape),
        "bias": spec.out_channels if spec.bias else 0,
        "grad_output": batch * spec.out_channels * geometry.out_length,
    }
    results = {
        "output": inputs["grad_output"],
        "grad_input": inputs["input"],
        "grad_weight": inputs["weight"],
        "grad_bias": inputs["bias"],
    }
    item = _itemsize(spec)
    if spec.compact is None:
        size = item * (sum(inputs.values()) + sum(results.values())) + 8 * sum(results.values())
        return 4 * size + 64 * 2**20, size + 2**16
    kept = sum(min(spec.compact, n) for n in results.values())
    size = kept * (item + 16) + 2**16
    drawn = sum(min(inputs[name], WHOLE_ELEMENTS) for name in ("input", "grad_output"))
    return 60 * drawn + 8 * inputs["weight"] + 512 * 2**20, size


def _memory_available() -> int | None:
    """Memory the system can give now (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_resources(specs: Sequence[CaseSpec], out: Path, jobs: int) -> None:
    """Refuse, before any work, cases this machine cannot build or store.

    Raises
    ------
    ValueError
        Naming the case, what it needs and what the machine has, and
        pointing to compact fixtures when the case is a whole one.
    """
    memory = _memory_available()
    where = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    disk = shutil.disk_usage(where).free
    estimates = [(spec, *needs(spec)) for spec in specs]
    if memory is not None:
        for spec, peak, _ in estimates:
            if peak > memory:
                hint = (" (try --compact 20000, or compact=20000: inputs drawn from their "
                        "seeds, expected values at 20,000 positions per array)"
                        if spec.compact is None else "")  # fmt: skip
                raise ValueError(
                    f"case {spec.id} needs about {_bytes(peak)} of memory to build and "
                    f"{_bytes(needs(spec)[1])} of disk; this machine has {_bytes(memory)} "
                    f"of memory available{hint}"
                )
        largest = sorted((peak for _, peak, _ in estimates), reverse=True)[:jobs]
        if jobs > 1 and sum(largest) > memory:
            raise ValueError(
                f"{jobs} jobs at once need about {_bytes(sum(largest))} of memory, "
                f"this machine has {_bytes(memory)} available: use fewer --jobs"
            )
    total = sum(size for _, _, size in estimates)
    if total > disk:
        raise ValueError(
            f"the cases take about {_bytes(total)} of disk; {where} has {_bytes(disk)} free"
        )


def _bytes(size: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 2**20), ("kiB", 2**10)):
        if size >= scale:
            amount = size / scale
            return f"{amount:,.0f} {unit}" if amount >= 100 else f"{amount:.3g} {unit}"
    return f"{int(size)} B"


def build_case(spec: CaseSpec) -> tuple[str, bytes, dict[str, Any]]:
    """One case's file and metadata (what a worker process or cluster worker runs)."""
    arrays, metadata = build(spec)
    return __version__, to_bytes(arrays, metadata), metadata


def _version() -> str:
    return __version__


def built(
    specs: Sequence[CaseSpec],
    jobs: int = 1,
    scheduler: str | None = None,
    step: Callable[[CaseSpec, float], None] | None = None,
) -> Iterator[Built]:
    """Build every case and hand each back, in the given order.

    ``jobs`` processes at once (one: in this process, with progress inside
    each case), or the workers of the dask.distributed cluster at
    ``scheduler``. ``step(spec, fraction)`` reports progress: a fraction of
    the case at a time, or the whole case when it is done.
    """
    if scheduler is not None:
        yield from _on_cluster(specs, scheduler, step)
    elif jobs > 1 and len(specs) > 1:
        yield from _in_processes(specs, jobs, step)
    else:
        for spec in specs:

            def inside(spec: CaseSpec = spec) -> None:
                if step is not None:
                    step(spec, 1 / (BUILD_STEPS + 1))

            arrays, metadata = build(spec, inside)
            data = to_bytes(arrays, metadata)
            del arrays
            if step is not None:
                step(spec, 1 / (BUILD_STEPS + 1))
            yield spec, data, metadata


def _in_order(
    specs: Sequence[CaseSpec],
    finished: Iterator[tuple[int, tuple[str, bytes, dict[str, Any]]]],
    step: Callable[[CaseSpec, float], None] | None,
) -> Iterator[Built]:
    """Results as they finish, handed on in the specs' order."""
    waiting: dict[int, Built] = {}
    following = 0
    for index, (version, data, metadata) in finished:
        if version != __version__:
            raise GoldenFileError(
                f"a worker runs uscale_ref {version}, this process {__version__}: the bytes "
                "would differ; install the same version everywhere"
            )
        waiting[index] = (specs[index], data, metadata)
        if step is not None:
            step(specs[index], 1.0)
        while following in waiting:
            yield waiting.pop(following)
            following += 1


def _indexed(item: tuple[int, CaseSpec]) -> tuple[int, tuple[str, bytes, dict[str, Any]]]:
    index, spec = item
    return index, build_case(spec)


def _in_processes(
    specs: Sequence[CaseSpec], jobs: int, step: Callable[[CaseSpec, float], None] | None
) -> Iterator[Built]:
    # Fresh interpreters (not forks of this one, which may hold threads and locks).
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(jobs, len(specs))) as pool:  # leaving the block terminates it
        finished = pool.imap_unordered(_indexed, list(enumerate(specs)))
        yield from _in_order(specs, finished, step)


def _on_cluster(
    specs: Sequence[CaseSpec], address: str, step: Callable[[CaseSpec, float], None] | None
) -> Iterator[Built]:
    try:
        import distributed
    except ImportError:
        raise ValueError(
            "--scheduler needs dask.distributed (pip install 'uscale-ref[distributed]')"
        ) from None
    # Typed loosely: the package's own hints vary between its releases.
    connect: Any = distributed.Client
    completed: Any = distributed.as_completed
    with connect(address) as client:
        versions = set(client.run(_version).values())
        if versions - {__version__}:
            raise GoldenFileError(
                f"workers run uscale_ref {sorted(versions)}, this process {__version__}: the "
                "bytes would differ; install the same version everywhere"
            )
        futures = client.map(_indexed, list(enumerate(specs)), pure=False)
        try:
            finished = (future.result() for future in completed(futures))
            yield from _in_order(specs, finished, step)
        finally:
            client.cancel(futures)
