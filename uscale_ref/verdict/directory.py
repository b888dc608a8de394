"""Judging a folder of another implementation's result files (``uscale-ref golden check``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..tolerance.rule import (
    check_accumulate,
    check_algorithm,
    check_precision,
    check_rounding,
    check_skip,
)
from .case import CaseVerdict, judge

if TYPE_CHECKING:
    from ..golden.fixture import Fixture

__all__ = ["check_directory", "format_table", "printable", "read_results"]


def check_directory(
    results_dir: Path | str,
    golden_dir: Path | str | None = None,
    precision: str = "exact",
    *,
    accumulate: str | None = None,
    skip: str | Iterable[str] | None = None,
    reference: bool = False,
    partial: bool = False,
    whole_reference: bool = False,
    algorithm: str = "direct",
    rounding: str = "nearest",
) -> tuple[list[CaseVerdict], list[str]]:
    """Judge every ``<case_id>.npz`` in ``results_dir`` against the goldens.

    Returns the verdicts (one per case) and the problems that stopped a
    comparison (unknown id, unreadable file, wrong shape or dtype, ...), cases
    of the golden folder without results among them unless ``partial``.
    Nothing in either folder is modified. ``precision``, ``accumulate`` and
    ``skip`` as for :func:`uscale_ref.golden.assert_matches`, except that
    ``precision="tf32"`` applies to the float32 and complex64 cases only
    (the others are judged as usual); ``reference`` explains each failing
    case (:func:`uscale_ref.verdict.diagnosis.explain`: a correct evaluation's
    precision beside it, and the likely cause in its ``cause``; with
    ``whole_reference`` that evaluation covers the whole case, for pictures);
    ``algorithm`` and ``rounding`` as for :func:`uscale_ref.verdict.judge`.
    """
    from ..golden.errors import GoldenFileError
    from ..golden.store import cases, load

    check_precision(precision)
    check_accumulate(accumulate)
    check_algorithm(algorithm)
    check_rounding(rounding)
    check_skip(skip)
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise GoldenFileError(f"{results_dir}: not a directory")
    verdicts: list[CaseVerdict] = []
    problems: list[str] = []
    files = _result_files(results_dir)
    if not files:
        problems.append(f"{results_dir}: no .npz result files")
    try:
        every = cases(golden_dir=golden_dir if golden_dir is not None else _default())
        known = set(every)
    except GoldenFileError as error:
        return verdicts, [*problems, str(error)]
    for path in files:
        case_id = path.stem
        if not path.name.isprintable():
            problems.append(f"{printable(str(path))}: a file name with control characters; skipped")
            continue
        if case_id not in known:  # said here: loading would read the manifest again
            problems.append(f"{path}: unknown golden case id {case_id!r}")
            continue
        try:
            fixture = load(case_id, golden_dir)
        except (ValueError, GoldenFileError) as error:
            problems.append(f"{path}: {error}")
            continue
        try:
            given = read_results(path, fixture)
            chosen = precision if fixture.dtype in ("float32", "complex64") else "exact"
            with np.errstate(all="ignore"):
                verdict = judge(fixture, given, chosen, accumulate, skip, keep=reference,
                                algorithm=algorithm, rounding=rounding)  # fmt: skip
                if reference:
                    from .diagnosis import explain

                    explain(verdict, fixture, given, chosen, accumulate, whole_reference)
            verdicts.append(verdict)
        except (GoldenFileError, TypeError, ValueError) as error:
            problems.append(str(error) if str(error).startswith(str(path)) else f"{path}: {error}")
    if not partial:
        problems.extend(_missing(files, every))
    return verdicts, problems


#: The most entries a results folder may hold; a folder with more is refused unscanned
#: (a suite's results are one file per case: the standard suite has 204).
MAX_RESULT_FILES = 10_000


def _result_files(folder: Path) -> list[Path]:
    """The ``*.npz`` entries of a results folder, sorted; a GoldenFileError past
    :data:`MAX_RESULT_FILES` entries of any kind, before the rest are looked at."""
    from ..golden.errors import GoldenFileError

    found = []
    with os.scandir(folder) as entries:
        for count, entry in enumerate(entries, start=1):
            if count > MAX_RESULT_FILES:
                raise GoldenFileError(
                    f"{folder}: holds more than {MAX_RESULT_FILES:,} entries; a results folder "
                    "holds one <case_id>.npz per case (split it, or check a folder per suite)"
                )
            if entry.name.endswith(".npz"):
                found.append(folder / entry.name)
    return sorted(found)


def _missing(files: list[Path], every: list[str]) -> list[str]:
    """A problem naming the golden folder's cases (``every``) without results, if any."""
    given = {path.stem for path in files}
    missing = [case_id for case_id in every if case_id not in given]
    if not missing:
        return []
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return [
        f"{len(missing)} of {len(every)} cases have no results: {shown} "
        "(to check only the cases given, say so: --partial, or partial=True)"
    ]


def _default() -> Path:
    from ..golden.store import default_dir

    return default_dir()


def read_results(path: Path, fixture: Fixture) -> dict[str, npt.NDArray[Any]]:
    """A results file for ``fixture``: only its result names, shapes and dtypes, judged first.

    Each member's ``.npy`` header is checked against the expected array
    before its data is read, so a file cannot make this read more than the
    expected arrays' bytes (plus one per member). Big-endian data is
    accepted and converted.
    """
    from ..golden.errors import GoldenFileError
    from ..golden.npz import read_npz
    from ..golden.resources import format_bytes, memory_available

    expected = fixture.expected
    memory = memory_available()

    def judge_header(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        if name not in expected:
            raise GoldenFileError(f"{path}: holds {name!r}; expected some of {sorted(expected)}")
        want, whole = expected[name], fixture.result_shape(name)
        if shape != whole:
            raise GoldenFileError(f"{path}: {name} has shape {shape}, expected {whole}")
        if dtype.newbyteorder("=") != want.dtype:
            raise GoldenFileError(f"{path}: {name} has dtype {dtype}, expected {want.dtype}")
        size = int(np.prod(whole, dtype=np.int64)) * want.itemsize
        if memory is not None and 2 * size > memory:
            raise GoldenFileError(
                f"{path}: {name} of shape {whole} takes {format_bytes(size)}; reading and "
                f"judging it needs about twice that, and this machine has "
                f"{format_bytes(memory)} available"
            )

    limit = sum(
        int(np.prod(fixture.result_shape(name), dtype=np.int64)) * a.itemsize
        for name, a in expected.items()
    )
    given = read_npz(path, judge_header, limit)
    if not given:
        raise GoldenFileError(f"{path}: holds no arrays; expected some of {sorted(expected)}")
    return given


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name, say) written as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def format_table(verdicts: list[CaseVerdict]) -> str:
    """A plain-text table: one row per (case, array): the largest error and the share of the
    bound it uses, the precision achieved and required, the bias in standard errors."""
    header = (
        f"{'case':<36} {'array':<12} {'max |err|':>10} {'of bound':>8} {'bits':>6} "
        f"{'needed':>6} {'bias':>6}  result"
    )
    rows = [header, "-" * len(header)]
    for verdict in verdicts:
        for r in verdict.arrays:
            bits = r.precision.bits
            shown = "exact" if bits == float("inf") else f"{bits:.1f}"
            result = "pass" if r.passed else "FAIL " + ",".join(r.failed_checks)
            rows.append(
                f"{printable(verdict.case_id):<36} {r.name:<12} {r.max_abs_error:>10.3g} "
                f"{r.bound_ratio:>8.2g} {shown:>6} {r.precision.required:>6g} "
                f"{r.bias.z:>6.2g}  {result}"
            )
    return "\n".join(rows)
