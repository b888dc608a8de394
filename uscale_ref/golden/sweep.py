"""Building many cases: one after another, in parallel processes, or on a dask cluster.

Each case's bytes are a pure function of its spec, so whoever builds it, the
file is the same: :func:`built` hands the cases back in their given order
whatever order they finish in, and the one process that called
:func:`uscale_ref.golden.generate` writes every file. Before any work,
:func:`check_resources` compares what the cases need (memory to build the
largest, disk for all of them) with what the machine has, and says so
instead of failing halfway with NumPy's ``ArrayMemoryError``
(:mod:`uscale_ref.golden.resources`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .. import __version__
from .errors import GoldenFileError
from .fixture import BUILD_STEPS, build, to_bytes
from .resources import check_resources, needs
from .suite import CaseSpec

__all__ = ["built", "check_resources", "needs"]

Built = tuple[CaseSpec, bytes, dict[str, Any]]


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
