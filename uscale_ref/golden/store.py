"""A directory of fixtures and its manifest: generate, verify, load."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TextIO

from .. import __version__
from .errors import GoldenFileError
from .fixture import (
    FORMAT_VERSION,
    READABLE_VERSIONS,
    Fixture,
    build,
    read,
    read_metadata,
    sha256,
    spec_from_metadata,
    to_bytes,
)
from .suite import SUITES, CaseSpec, select, suite_specs
from .sweep import built, check_resources

MANIFEST = "manifest.json"
LOCK = ".uscale-ref.lock"
# The standard suite's manifest takes about 100 kB; 64 MiB lists some 150,000 cases.
MAX_MANIFEST_BYTES = 64 * 2**20

__all__ = ["MANIFEST", "cases", "default_dir", "generate", "load", "spec_for", "verify"]


def default_dir() -> Path:
    """Where the committed fixtures are looked for, in this order.

    1. ``$USCALE_REF_GOLDEN_DIR``, when set and not empty;
    2. the suite installed with the package (``uscale_ref/golden_data/`` of
       a wheel or sdist install);
    3. the ``golden/`` folder of the source checkout this package runs from
       (an editable install or a checkout on ``sys.path``).

    The current folder is never consulted.
    """
    configured = os.environ.get("USCALE_REF_GOLDEN_DIR")
    if configured:
        return Path(configured)
    package = Path(__file__).resolve().parents[1]
    installed = package / "golden_data"
    if (installed / MANIFEST).is_file():
        return installed
    return package.parent / "golden"


def spec_for(case_id: str) -> CaseSpec:
    """The spec of a case id from any suite; ValueError for an unknown id."""
    for suite in SUITES:
        for spec in suite_specs(suite):
            if spec.id == case_id:
                return spec
    raise ValueError(f"unknown golden case id {case_id!r}")


def cases(
    suite: str = "standard",
    dtype: str | Iterable[str] | None = None,
    filter: str | None = None,
    golden_dir: Path | str | None = None,
) -> list[str]:
    """Case ids of a built-in suite, or of the suite in the folder ``golden_dir`` (your own),
    optionally of some dtypes and matching a glob ``filter``.

    The list is ready for ``pytest.mark.parametrize("case_id", cases())``.

    Examples
    --------
    >>> ids = cases(dtype="complex128", filter="*_dw_*")
    >>> ids
    ['c128_o4_dw_p1_k3', 'c128_o4_dw_same_k4']
    """
    dtypes = [dtype] if isinstance(dtype, str) else dtype
    if golden_dir is None:
        return [spec.id for spec in select(suite_specs(suite), dtypes, filter)]
    entries = _read_manifest(Path(golden_dir))["cases"]
    wanted = None if dtypes is None else set(dtypes)
    return [
        str(entry["id"])
        for entry in entries
        if (wanted is None or entry.get("dtype") in wanted)
        and (filter is None or fnmatch.fnmatchcase(str(entry["id"]), filter))
    ]


def _manifest_entry(spec: CaseSpec, data: bytes, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": spec.id,
        "file": f"{spec.id}.npz",
        "sha256": sha256(data),
        "dtype": spec.dtype,
        "arguments": metadata["arguments"],
        "shapes": metadata["shapes"],
    }


def _manifest_text(suite: str, entries: list[dict[str, Any]]) -> str:
    manifest = {
        "format_version": FORMAT_VERSION,
        "generator": f"uscale_ref {__version__}",
        "suite": suite,
        "cases": entries,
    }
    return json.dumps(manifest, sort_keys=True, indent=1) + "\n"


def _cost(spec: CaseSpec) -> float:
    """The work of one case, in multiply-adds of its sums (for the time estimate)."""
    geometry = spec.geometry
    per_output = spec.in_channels // spec.groups * spec.kernel_size + 1
    outputs = (spec.batch_size or 1) * spec.out_channels * geometry.out_length
    if spec.compact is not None:  # positions' sums, and grad_weight's grid over the batch
        columns = (spec.batch_size or 1) * geometry.out_length
        return 2.0 * spec.compact * per_output + spec.compact * columns + 1.0
    return 3.0 * outputs * per_output + 1.0


class Progress:
    """A progress bar on stderr with the time left, estimated from the work done so far.

    Called as ``progress(done, total, label)``, where ``done`` and ``total``
    count work (multiply-adds); on a terminal the bar redraws in place,
    elsewhere it prints a line at most every ten seconds.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.start = time.monotonic()
        self.last = -math.inf

    def __call__(self, done: float, total: float, label: str) -> None:
        stream = self.stream or sys.stderr
        now = time.monotonic()
        finished = done >= total
        tty = stream.isatty()
        if not finished and now - self.last < (0.2 if tty else 10.0):
            return
        self.last = now
        fraction = min(1.0, done / total) if total > 0 else 1.0
        elapsed = now - self.start
        width = 30
        bar = "#" * int(width * fraction) + "." * (width - int(width * fraction))
        if finished:
            tail = f"done in {_duration(elapsed)}"
        elif fraction > 0 and elapsed > 1.0:
            tail = f"about {_duration(elapsed * (1 - fraction) / fraction)} left"
        else:
            tail = "estimating the time left"
        line = f"[{bar}] {100 * fraction:3.0f}% {tail:<24} {label}"
        if tty:
            print(f"\r{line:<100}", end="\n" if finished else "", file=stream, flush=True)
        else:
            print(line, file=stream, flush=True)


def _say(text: str) -> None:
    """A notice on stderr, in the progress bar's place."""
    print(f"uscale-ref: {text}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min {seconds % 60:02d} s"


def generate(
    out: Path | str,
    suite: str | None = None,
    dtypes: Iterable[str] | None = None,
    pattern: str | None = None,
    progress: Callable[[float, float, str], None] | Literal["auto"] | None = "auto",
    *,
    specs: Iterable[CaseSpec] | None = None,
    jobs: int = 1,
    scheduler: str | None = None,
    connect_timeout: float = 10.0,
    worker_timeout: float = 30.0,
) -> list[str]:
    """Write cases and their manifest into the folder ``out``; return the case ids written.

    Parameters
    ----------
    out : path
        The folder (created if missing).
    suite : str, optional
        Without ``specs``: the built-in suite to write, ``"standard"``
        (default) or ``"large"``. With ``specs``: the name the written suite
        gets (default ``"custom"``; not a built-in suite's name).
    dtypes, pattern : optional
        Only the cases of these dtypes whose id matches this glob.
    progress : callable, None or ``"auto"``
        ``progress(done, total, label)`` with the work done so far; ``"auto"``
        draws a bar with the time left on stderr, None is silent.
    specs : iterable of CaseSpec, optional
        Your own cases instead of a built-in suite.
    jobs : int
        Cases built at once, each in a process of its own (the bytes are the
        same as one after another).
    scheduler : str, optional
        The address of a dask.distributed scheduler whose workers build the
        cases (``pip install "uscale-ref[distributed]"``, the same uscale_ref
        version on every worker); this process writes the files.
    connect_timeout : float
        Seconds to wait for the scheduler to answer; past them, a
        :class:`~uscale_ref.golden.SweepError`.
    worker_timeout : float
        Seconds to wait for the scheduler's first worker; past them, a
        :class:`~uscale_ref.golden.SweepError`.

    With ``jobs > 1`` the cases are built in fresh Python processes, each
    of which imports the script that called this first. So a script calls
    it under a main guard, ``if __name__ == "__main__"``; without one, the
    first worker raises a ``SweepError`` instead of starting workers for
    ever. Ctrl-C stops every worker at once.

    Into a folder that already holds a manifest of the same suite, the new
    cases are merged: the entries of the cases not written are kept. A
    folder holding another suite's manifest, or a broken one, is refused.

    Before any work, cases this machine cannot build (memory) or store (disk)
    are refused with a ``ValueError`` that says what they need. Every file is
    written to a temporary name in ``out`` first and moved into place only
    when all cases are built, under a lock on the folder that
    merges the manifest as it then stands; so an interrupted or failed run
    leaves the folder as it was, two runs into one folder both land, and a
    symbolic link in ``out`` is replaced rather than written through.

    Examples
    --------
    >>> import tempfile
    >>> mine = CaseSpec("float32", kernel_size=5, in_channels=8, out_channels=8, padding="same")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     generate(folder, specs=[mine], progress=None)
    ...     load(mine.id, folder).metadata["suite"]
    ['f32_c8o8_same_k5']
    'custom'
    """
    if not str(out):
        raise ValueError("out must name a folder, got an empty path")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} is a file, not a folder; name a folder to write into")
    if specs is None:
        name = suite or "standard"
        chosen = select(suite_specs(name), dtypes, pattern)
        if not chosen:
            raise ValueError(
                f"no case of suite {name!r} matches dtype={dtypes!r} filter={pattern!r}"
            )
    else:
        name = "custom" if suite is None else suite
        if name in SUITES or not isinstance(name, str) or not name.strip():
            raise ValueError(
                f"suite: your own cases need a name of their own (not one of {sorted(SUITES)}), "
                f"got {name!r}"
            )
        given = list(specs)
        for spec in given:
            if not isinstance(spec, CaseSpec):
                raise TypeError(f"specs must hold CaseSpec objects, got {type(spec).__name__}")
        chosen = [replace(spec, suite=name) for spec in select(given, dtypes, pattern)]
        if not chosen:
            raise ValueError("specs: no case to write")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a number of processes of at least 1, got {jobs!r}")
    for label, seconds in (("connect_timeout", connect_timeout),
                           ("worker_timeout", worker_timeout)):  # fmt: skip
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not (0 < seconds < math.inf)
        ):
            raise ValueError(f"{label} must be a positive number of seconds, got {seconds!r}")
    if (out / MANIFEST).exists():
        _check_suite(out, name)  # refuse early, before any work
    check_resources(chosen, out, 1 if scheduler is not None else jobs)
    report = Progress() if progress == "auto" else progress
    costs = {spec.id: _cost(spec) for spec in chosen}
    total, done = sum(costs.values()), 0.0

    def step(spec: CaseSpec, fraction: float) -> None:
        nonlocal done
        done += costs[spec.id] * fraction
        if report is not None and done < total:  # the end is reported once, below
            report(done, total, spec.id)

    staged: dict[str, tuple[Path, dict[str, Any]]] = {}
    with _interruptible():
        created, committed = not out.exists(), False
        # This run's temporary files: whatever moment a signal lands, the clean-up finds them.
        run = f".uscale-ref-{os.getpid()}-{secrets.token_hex(4)}-"
        out.mkdir(parents=True, exist_ok=True)
        try:
            said = None if report is None else _say
            for spec, data, metadata in built(chosen, jobs, scheduler, step, connect_timeout,
                                              worker_timeout, said):  # fmt: skip
                staged[spec.id] = (_stage(out, data, run), _manifest_entry(spec, data, metadata))
                del data
            with _folder_lock(out):
                _remove_orphans(out)
                # The manifest as it stands now (another run may have added to it).
                kept = _check_suite(out, name) if (out / MANIFEST).exists() else {}
                kept.update({case_id: entry for case_id, (_, entry) in staged.items()})
                order = {spec.id: index for index, spec in enumerate(_suite_order(name))}
                entries = sorted(
                    kept.values(), key=lambda entry: order.get(entry["id"], len(order))
                )
                # Every byte is written before anything is moved: what is left can't fail
                # for a full disk, and no signal stops it halfway.
                moves = [(temporary, entry["file"]) for temporary, entry in staged.values()]
                moves.append((_stage(out, _manifest_text(name, entries).encode(), run), MANIFEST))
                with _signals_held():
                    for temporary, file in moves:  # the manifest last
                        os.replace(temporary, out / file)
                    committed = True
        finally:
            with _signals_held():  # a second Ctrl-C cannot stop the clean-up halfway
                for temporary in out.glob(f"{run}*.tmp"):
                    temporary.unlink(missing_ok=True)
                if created and not committed:  # a failed first run leaves no folder behind
                    (out / LOCK).unlink(missing_ok=True)
                    with contextlib.suppress(OSError):
                        out.rmdir()
    if report is not None:
        report(total, total, f"{len(chosen)} case(s) in {out}")
    return [spec.id for spec in chosen]


def _remove_orphans(folder: Path) -> None:
    """Delete the temporary files of runs that were killed outright (SIGKILL, power loss):
    ``.uscale-ref-<pid>-*.tmp`` whose process no longer runs. Called under the folder's
    lock, so no live run's files are touched."""
    for temporary in folder.glob(".uscale-ref-*-*.tmp"):
        pid = temporary.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _running(int(pid)):
            temporary.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` exists (on POSIX; elsewhere assumed to)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, AttributeError):
        return True
    return True


def _suite_order(name: str) -> list[CaseSpec]:
    """A built-in suite's cases in their fixed order; none for your own suites (kept as added)."""
    return suite_specs(name) if name in SUITES else []


def _check_suite(out: Path, name: str) -> dict[str, dict[str, Any]]:
    """The entries of ``out``'s manifest, which must be of the suite ``name``."""
    existing = _read_manifest(out)
    if existing.get("suite") != name:
        raise GoldenFileError(
            f"{out / MANIFEST}: holds suite {existing.get('suite')!r}, not {name!r}; "
            "generate into another folder"
        )
    return {entry["id"]: entry for entry in existing["cases"]}


def _stage(folder: Path, data: bytes, prefix: str) -> Path:
    """``data`` written and flushed to a new temporary file ``prefix*.tmp`` in ``folder``."""
    handle, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(path, 0o644)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (POSIX ``flock`` on a hidden lock file) while it is held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: writes are still atomic per file
        yield
        return
    with open(folder / LOCK, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an exception so the same clean-up runs as for Ctrl-C."""


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGTERM raises :class:`Interrupted` (in the main thread) while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise Interrupted("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM are held while the block (the short commit of a run) runs.

    One that arrives meanwhile is dropped: the run it would have stopped is
    complete by then, and stopping it afterwards would report a change as none.
    """
    main = threading.current_thread() is threading.main_thread()
    if not hasattr(signal, "pthread_sigmask") or not main:  # pragma: no cover
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        handlers = {number: signal.signal(number, signal.SIG_IGN) for number in held}
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, each entry checked: an id, a ``.npz`` file name in the folder, a sha256."""
    path = directory / MANIFEST
    try:
        if path.exists() and not path.is_file():
            raise GoldenFileError(f"{path}: not a regular file")
        with open(path, "rb") as stream:
            # Sized first: read(n) would reserve n bytes whatever the file holds.
            size = os.fstat(stream.fileno()).st_size
            data = stream.read(size + 1) if size <= MAX_MANIFEST_BYTES else b""
        if size > MAX_MANIFEST_BYTES or len(data) > MAX_MANIFEST_BYTES:
            raise GoldenFileError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes; refused")
        manifest = json.loads(data.decode())
    except FileNotFoundError:
        if not directory.is_dir():
            raise GoldenFileError(f"{directory}: not a directory") from None
        raise GoldenFileError(
            f"{path}: no manifest (write one with 'uscale-ref golden generate --out {directory}')"
        ) from None
    except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as error:
        raise GoldenFileError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("cases"), list):
        raise GoldenFileError(f"{path}: manifest has no 'cases' list")
    version = manifest.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise GoldenFileError(
            f"{path}: format_version {version!r}, this reader knows "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    seen = set()
    for number, entry in enumerate(manifest["cases"]):
        where = f"{path}: case entry {number}"
        if not isinstance(entry, dict):
            raise GoldenFileError(f"{where} must be a JSON object, got {entry!r}")
        case_id, file, digest = entry.get("id"), entry.get("file"), entry.get("sha256")
        if not isinstance(case_id, str) or not case_id or case_id in seen:
            raise GoldenFileError(f"{where}: 'id' must be a new, non-empty string, got {case_id!r}")
        seen.add(case_id)
        # A plain file name, never a path: an entry cannot point outside its folder.
        if (
            not isinstance(file, str)
            or Path(file).name != file
            or file in (".", "..")
            or "\\" in file
            or not file.endswith(".npz")
        ):
            raise GoldenFileError(
                f"{where}: 'file' must be the name of a .npz file in the folder, got {file!r}"
            )
        if not isinstance(digest, str) or len(digest) != 64:
            raise GoldenFileError(f"{where}: 'sha256' must be 64 hex digits, got {digest!r}")
    return manifest


def _read_listed(path: Path) -> bytes:
    """A listed fixture's bytes; a folder or missing file is a GoldenFileError saying which."""
    if path.is_dir():
        raise GoldenFileError(f"{path}: listed in the manifest but is a directory")
    if path.exists() and not path.is_file():
        raise GoldenFileError(f"{path}: listed in the manifest but not a regular file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise GoldenFileError(f"{path}: listed in the manifest but missing") from None
    except OSError as error:
        raise GoldenFileError(f"{path}: cannot be read ({error})") from None


def load(case_id: str, golden_dir: Path | str | None = None) -> Fixture:
    """Load one committed case after checking its sha256 against the manifest.

    Raises
    ------
    ValueError
        An id not in the manifest.
    GoldenFileError
        A missing, corrupt or tampered file, or a broken manifest.
    """
    directory = Path(golden_dir) if golden_dir is not None else default_dir()
    manifest = _read_manifest(directory)
    entries = {entry.get("id"): entry for entry in manifest["cases"]}
    if case_id not in entries:
        raise ValueError(f"unknown golden case id {case_id!r} (not in {directory / MANIFEST})")
    path = directory / entries[case_id]["file"]
    data = _read_listed(path)
    if sha256(data) != entries[case_id]["sha256"]:
        raise GoldenFileError(f"{path}: sha256 differs from the manifest (modified or corrupt)")
    fixture = read(path)
    if fixture.id != case_id:
        raise GoldenFileError(
            f"{path}: holds case {fixture.id!r}, but the manifest lists it as {case_id!r}"
        )
    return fixture


def _spec_of(path: Path, case_id: str, suite: str) -> CaseSpec:
    """The spec a listed fixture must regenerate from.

    A built-in suite's case comes from the suite's table (the bytes then
    show whether the file agrees); your own cases come from their
    metadata, whose id must be the one listed.
    """
    if suite in SUITES:
        return spec_for(case_id)
    metadata = read_metadata(path)
    spec = spec_from_metadata(metadata, str(path))
    if spec.id != case_id or metadata.get("id") != case_id:
        raise GoldenFileError(
            f"{path}: holds case {metadata.get('id')!r} (by its metadata {spec.id!r}), "
            f"listed as {case_id!r}"
        )
    if spec.suite != suite:
        raise GoldenFileError(f"{path}: of suite {spec.suite!r}, the manifest's is {suite!r}")
    return spec


def verify(golden_dir: Path | str | None = None) -> list[str]:
    """Check every sha256 and regenerate every case; return the problems found (none: [])."""
    directory = Path(golden_dir) if golden_dir is not None else default_dir()
    try:
        manifest = _read_manifest(directory)
    except GoldenFileError as error:
        return [str(error)]
    problems = []
    listed = set()
    entries = []
    for entry in manifest["cases"]:
        case_id = entry["id"]
        path = directory / entry["file"]
        listed.add(path.name)
        try:
            data = _read_listed(path)
        except GoldenFileError as error:
            problems.append(str(error))
            continue
        if sha256(data) != entry.get("sha256"):
            problems.append(f"{path}: sha256 differs from the manifest")
        try:
            spec = _spec_of(path, str(case_id), str(manifest.get("suite")))
        except (ValueError, GoldenFileError) as error:
            problems.append(str(error) if str(error).startswith(str(path)) else f"{path}: {error}")
            continue
        try:
            check_resources([spec], directory, 1)  # before any large allocation
        except ValueError as error:
            problems.append(f"{path}: cannot be regenerated here: {error}")
            continue
        arrays, metadata = build(spec)
        fresh = to_bytes(arrays, metadata)
        if fresh != data:
            problems.append(f"{path}: differs from what the generator produces now")
        entries.append(_manifest_entry(spec, fresh, metadata))
    for extra in sorted(p.name for p in directory.glob("*.npz") if p.name not in listed):
        problems.append(f"{directory / extra}: not listed in the manifest")
    if not problems:
        expected = _manifest_text(str(manifest.get("suite")), entries)
        if (directory / MANIFEST).read_bytes() != expected.encode():
            problems.append(f"{directory / MANIFEST}: differs from the regenerated manifest")
    return problems
