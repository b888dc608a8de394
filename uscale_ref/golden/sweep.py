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

import contextlib
import multiprocessing
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .. import __version__
from .errors import GoldenFileError, SweepError
from .fixture import BUILD_STEPS, build, to_bytes
from .resources import check_resources, format_bytes, needs
from .suite import CaseSpec

__all__ = ["SweepError", "built", "check_resources", "needs"]

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
    connect_timeout: float = 10.0,
    worker_timeout: float = 30.0,
    say: Callable[[str], None] | None = None,
) -> Iterator[Built]:
    """Build every case and hand each back, in the given order.

    ``jobs`` processes at once (one: in this process, with progress inside
    each case), or the workers of the dask.distributed cluster at
    ``scheduler``. ``step(spec, fraction)`` reports progress: a fraction of
    the case at a time, or the whole case when it is done. A scheduler must
    answer within ``connect_timeout`` seconds and have a worker within
    ``worker_timeout``; a worker process that dies, or a case that kills
    its cluster workers, stops the sweep. Each is a :class:`SweepError`.
    ``say(text)``, when given, is told what a sweep waits for (a scheduler's first
    worker), so that no wait is silent.
    """
    if scheduler is not None:
        yield from _on_cluster(specs, scheduler, step, connect_timeout, worker_timeout, say)
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


def _quiet_worker() -> None:
    """In a worker: Ctrl-C is left to the process that started the sweep, which stops it
    (a worker of its own would print a traceback for every key press)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _refuse_unguarded_script() -> None:
    """A clear error where a script without a main guard would start workers for ever.

    A worker process starts by importing the script that started the sweep;
    a script that calls :func:`uscale_ref.golden.generate` at its top level
    would then start a sweep of its own in every worker.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SweepError(
            "golden.generate(..., jobs > 1) ran while a worker process was starting: the "
            "script that calls it runs again in every worker; put the call under "
            "'if __name__ == \"__main__\":' (or use jobs=1)"
        )


def _in_processes(
    specs: Sequence[CaseSpec], jobs: int, step: Callable[[CaseSpec, float], None] | None
) -> Iterator[Built]:
    _refuse_unguarded_script()
    # Fresh interpreters (not forks of this one, which may hold threads and locks).
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(min(jobs, len(specs)), mp_context=context,
                               initializer=_quiet_worker)  # fmt: skip
    try:
        with _ctrl_c_held():  # the workers start with Ctrl-C blocked, not only once they run
            futures = [pool.submit(_indexed, item) for item in enumerate(specs)]
        finished = (future.result() for future in as_completed(futures))
        yield from _in_order(specs, finished, step)
    except BrokenProcessPool:
        raise SweepError(
            "a worker process ended before its case was built (killed, out of memory, or a "
            "script without 'if __name__ == \"__main__\":' around golden.generate); "
            "nothing was written"
        ) from None
    finally:
        _stop(pool)


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Block SIGINT in this thread while the block runs (processes started meanwhile inherit
    the mask); one that arrives is delivered after it."""
    if not hasattr(signal, "pthread_sigmask") or (
        threading.current_thread() is not threading.main_thread()
    ):  # pragma: no cover - not POSIX, or not the main thread (which alone gets signals)
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


#: How long a stopped worker may take to end before it is killed.
_STOP_SECONDS = 5.0


def _stop(pool: ProcessPoolExecutor) -> None:
    """End a pool now: queued cases cancelled, running workers terminated, none left behind."""
    processes = list(getattr(pool, "_processes", {}).values())  # the pool's own workers
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(_STOP_SECONDS)
        if process.is_alive():  # pragma: no cover - a worker deaf to SIGTERM
            process.kill()
            process.join(_STOP_SECONDS)


def _on_cluster(
    specs: Sequence[CaseSpec],
    address: str,
    step: Callable[[CaseSpec, float], None] | None,
    connect_seconds: float,
    worker_seconds: float,
    say: Callable[[str], None] | None = None,
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
    killed: Any = getattr(distributed, "KilledWorker", ())
    _probe(address, connect_seconds)
    try:
        client = connect(address, timeout=connect_seconds)
    except Exception as error:  # whatever the client raises, said in one line
        raise SweepError(f"--scheduler {address}: cannot connect ({_said(error)})") from None
    with client:
        try:
            if say is not None and not client.scheduler_info().get("workers"):
                say(f"waiting up to {worker_seconds:g} s (--worker-timeout) for a worker to join "
                    f"{address}")  # fmt: skip
            client.wait_for_workers(1, timeout=worker_seconds)
        except (OSError, TimeoutError) as error:
            raise SweepError(
                f"--scheduler {address}: no worker joined within {worker_seconds:g} s "
                f"(--worker-timeout; {_said(error)}); start workers with "
                f"'dask worker {address}'"
            ) from None
        versions = set(client.run(_version).values())
        if versions - {__version__}:
            raise GoldenFileError(
                f"workers run uscale_ref {sorted(versions)}, this process {__version__}: the "
                "bytes would differ; install the same version everywhere"
            )
        _check_worker_memory(client, specs, address)
        futures = client.map(_indexed, list(enumerate(specs)), pure=False)
        try:
            finished = (future.result() for future in completed(futures))
            yield from _in_order(specs, finished, step)
        except killed as error:
            largest = max(specs, key=lambda spec: needs(spec)[0])
            raise SweepError(
                f"--scheduler {address}: a case killed every worker that built it "
                f"({_said(error)[:120]}); the largest, {largest.id}, needs about "
                f"{format_bytes(needs(largest)[0])}: give workers more memory, or make the "
                "cases compact"
            ) from None
        finally:
            client.cancel(futures)


def _check_worker_memory(client: Any, specs: Sequence[CaseSpec], address: str) -> None:
    """Refuse, before any work, a case that needs more memory than any worker may use."""
    try:
        workers = client.scheduler_info()["workers"].values()
        limits = [int(w.get("memory_limit") or 0) for w in workers]
    except Exception:  # an older scheduler: the workers will tell
        return
    if not limits or min(limits) <= 0:  # no limit set
        return
    largest = max(limits)
    for spec in specs:
        peak = needs(spec)[0]
        if peak > largest:
            raise SweepError(
                f"--scheduler {address}: case {spec.id} needs about {format_bytes(peak)} of "
                f"memory to build; the workers may use {format_bytes(largest)} at most (give "
                "them more, or make the case compact)"
            )


def _probe(address: str, seconds: float) -> None:
    """Ask ``address`` who it is, with a deadline on every step, before a client connects
    (a client waits for ever on a silent service, and believes the first bytes of another
    protocol to be a message's length). A :class:`SweepError` unless a scheduler answers."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import distributed.comm

    connect: Any = distributed.comm.connect  # type: ignore[attr-defined]  # not re-exported

    async def identity() -> Any:
        comm = await asyncio.wait_for(connect(address, timeout=seconds), seconds)
        try:
            await asyncio.wait_for(comm.write({"op": "identity"}), seconds)
            return await asyncio.wait_for(comm.read(), seconds)
        finally:
            comm.abort()

    try:
        # In a thread of its own: the caller may already run an event loop (a notebook).
        with ThreadPoolExecutor(1) as thread:
            answer = thread.submit(asyncio.run, identity()).result()
    except (TimeoutError, asyncio.TimeoutError):
        raise SweepError(
            f"--scheduler {address}: no dask.distributed scheduler answered within {seconds:g} s "
            "(--connect-timeout)"
        ) from None
    except MemoryError:  # its first bytes, read as a message's length, asked for exabytes
        raise SweepError(
            f"--scheduler {address}: speaks another protocol, not dask.distributed's"
        ) from None
    except Exception as error:  # a refused connection, a closed one, ...
        raise SweepError(
            f"--scheduler {address}: did not answer as a dask.distributed scheduler "
            f"({_said(error)})"
        ) from None
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise SweepError(
            f"--scheduler {address}: answered, but not as a dask.distributed scheduler"
        )


def _said(error: BaseException) -> str:
    """An exception's type and first line of message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
