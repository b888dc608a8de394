"""A directory of fixtures and its manifest: generate, verify, load."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import GoldenFileError
from .fixture import FORMAT_VERSION, Fixture, build, read, sha256, to_bytes
from .suite import SUITES, CaseSpec, select, suite_specs

MANIFEST = "manifest.json"

__all__ = ["MANIFEST", "cases", "default_dir", "generate", "load", "spec_for", "verify"]


def default_dir() -> Path:
    """Where the committed fixtures are looked for.

    ``$USCALE_REF_GOLDEN_DIR`` if set; else the ``golden/`` folder of the
    source checkout this package runs from (an editable install); else
    ``./golden`` when it holds a manifest (a regular install used from the
    repository's root).
    """
    configured = os.environ.get("USCALE_REF_GOLDEN_DIR")
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[2] / "golden"
    if (checkout / MANIFEST).is_file():
        return checkout
    here = Path.cwd() / "golden"
    return here if (here / MANIFEST).is_file() else checkout


def spec_for(case_id: str) -> CaseSpec:
    """The spec of a case id from any suite; ValueError for an unknown id."""
    for suite in SUITES:
        for spec in suite_specs(suite):
            if spec.id == case_id:
                return spec
    raise ValueError(f"unknown golden case id {case_id!r}")


def cases(
    suite: str = "standard", dtype: str | Iterable[str] | None = None, filter: str | None = None
) -> list[str]:
    """Case ids of a suite, optionally of some dtypes and matching a glob ``filter``.

    The list is ready for ``pytest.mark.parametrize("case_id", cases())``.

    Examples
    --------
    >>> ids = cases(dtype="complex128", filter="*_dw_*")
    >>> ids
    ['c128_o4_dw_p1_k3', 'c128_o4_dw_same_k4']
    """
    dtypes = [dtype] if isinstance(dtype, str) else dtype
    return [spec.id for spec in select(suite_specs(suite), dtypes, filter)]


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
    manifest = {"format_version": FORMAT_VERSION, "suite": suite, "cases": entries}
    return json.dumps(manifest, sort_keys=True, indent=1) + "\n"


def _progress(done: int, total: int, label: str) -> None:
    width = 30
    filled = width * done // total
    bar = "#" * filled + "." * (width - filled)
    end = "\n" if done == total else ""
    if sys.stderr.isatty():
        print(f"\r[{bar}] {done}/{total} {label:<40}", end=end, file=sys.stderr, flush=True)
    elif done == total or done % max(1, total // 10) == 0:
        print(f"[{bar}] {done}/{total}", file=sys.stderr, flush=True)


def generate(
    out: Path | str,
    suite: str = "standard",
    dtypes: Iterable[str] | None = None,
    pattern: str | None = None,
    progress: Callable[[int, int, str], None] | None = _progress,
) -> list[str]:
    """Write the selected cases and their manifest into ``out``; return the case ids.

    Into a folder that already holds a manifest of the same suite, the new
    cases are merged: the entries of the cases not selected are kept, so
    the folder stays a consistent suite. A folder holding another suite's
    manifest, or a broken one, is refused.
    """
    if not str(out):
        raise ValueError("out must name a folder, got an empty path")
    out = Path(out)
    specs = select(suite_specs(suite), dtypes, pattern)
    if not specs:
        raise ValueError(f"no case of suite {suite!r} matches dtype={dtypes!r} filter={pattern!r}")
    kept: dict[str, dict[str, Any]] = {}
    if (out / MANIFEST).exists():
        existing = _read_manifest(out)
        if existing.get("suite") != suite:
            raise GoldenFileError(
                f"{out / MANIFEST}: holds suite {existing.get('suite')!r}, not {suite!r}; "
                "generate into another folder"
            )
        kept = {entry["id"]: entry for entry in existing["cases"]}
    out.mkdir(parents=True, exist_ok=True)
    for done, spec in enumerate(specs, start=1):
        arrays, metadata = build(spec)
        data = to_bytes(arrays, metadata)
        (out / f"{spec.id}.npz").write_bytes(data)
        kept[spec.id] = _manifest_entry(spec, data, metadata)
        if progress is not None:
            progress(done, len(specs), spec.id)
    order = {spec.id: index for index, spec in enumerate(suite_specs(suite))}
    entries = sorted(kept.values(), key=lambda entry: order.get(entry["id"], len(order)))
    (out / MANIFEST).write_text(_manifest_text(suite, entries))
    return [spec.id for spec in specs]


def _read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest, each entry checked: an id, a ``.npz`` file name in the folder, a sha256."""
    path = directory / MANIFEST
    try:
        if path.exists() and not path.is_file():
            raise GoldenFileError(f"{path}: not a regular file")
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise GoldenFileError(f"{path}: no manifest (run 'uscale-ref golden generate')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GoldenFileError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("cases"), list):
        raise GoldenFileError(f"{path}: manifest has no 'cases' list")
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
    return read(path)


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
            spec = spec_for(str(case_id))
        except ValueError as error:
            problems.append(f"{path}: {error}")
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
        if (directory / MANIFEST).read_text() != expected:
            problems.append(f"{directory / MANIFEST}: differs from the regenerated manifest")
    return problems
