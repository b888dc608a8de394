"""Judging another implementation's results against a fixture, in units of rounding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import GoldenFileError
from .fixture import RESULT_NAMES, Fixture, unit_roundoff
from .npz import read_npz
from .store import load

PRECISIONS = ("exact", "tf32")
# A TF32 kernel rounds each multiplicand to 11 significant bits: a faithful
# rounding (nearest, or toward zero) is within 2**-10 of it, relatively, so a
# product of two is within 2 * 2**-10 + 2**-20 of the exact one. The products of
# two 11-bit significands are exact in float32, whose accumulation the
# fixture's own tolerance already covers (docs/low-precision.md).
TF32_PRODUCT_ERROR = 2 * 2.0**-10 + 2.0**-20


def allowed_units(fixture: Fixture, name: str, precision: str = "exact") -> float:
    """The bound on ``|actual - expected| / (u * error_scale)`` for ``name``.

    ``"exact"``: the fixture's own tolerance (a kernel computing in the
    fixture's dtype, summing in any order). ``"tf32"`` (float32 and
    complex64 cases): add what rounding every multiplicand to TF32 can cost,
    ``(2 * 2**-10 + 2**-20) / u`` units (doubled for complex products).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    units = fixture.tolerance_units(name)
    if precision == "tf32":
        if fixture.dtype not in ("float32", "complex64"):
            raise ValueError(
                f"{fixture.id}: precision 'tf32' applies to float32 and complex64 cases, "
                f"not {fixture.dtype}"
            )
        factor = 2.0 if fixture.dtype == "complex64" else 1.0
        units += factor * TF32_PRODUCT_ERROR / unit_roundoff(fixture.dtype)
    return units


@dataclass(frozen=True)
class ArrayReport:
    """How one result array compares with its expected value.

    Attributes
    ----------
    name : str
        ``output``, ``grad_input``, ``grad_weight`` or ``grad_bias``.
    max_abs_error : float
        The largest ``|actual - expected|``.
    max_units : float
        The largest ``|actual - expected| / (u * error_scale)``.
    allowed_units : float
        The bound on it (:func:`allowed_units`).
    worst_index : tuple of int
        Where ``max_units`` is reached.
    actual_at_worst, expected_at_worst : float or complex
        The two values there.
    failing, size : int
        How many elements exceed the bound, of how many.
    pattern : str
        Where the failing elements lie (:func:`index_pattern`), e.g.
        ``"o in 64..127"``.
    """

    name: str
    max_abs_error: float
    max_units: float  # worst |actual - expected| / (u * error_scale)
    allowed_units: float
    worst_index: tuple[int, ...]
    actual_at_worst: float | complex
    expected_at_worst: float | complex
    failing: int = 0  # how many elements exceed the allowed units
    size: int = 0  # how many elements the array has
    pattern: str = ""  # where the failing elements lie, e.g. "o in 64..127"

    @property
    def passed(self) -> bool:
        """Whether every element is within the allowed units."""
        return self.max_units <= self.allowed_units

    def describe(self, case_id: str) -> str:
        """One line: the case, the worst element, its value and expected value, the error,
        and for a failing array how many elements fail and where."""
        where = ", ".join(map(str, self.worst_index))
        line = (
            f"{case_id}: {self.name}[{where}] = {self.actual_at_worst!r}, expected "
            f"{self.expected_at_worst!r} (|error| {self.max_abs_error:.3g} is "
            f"{self.max_units:.3g} units of rounding, allowed {self.allowed_units:g})"
        )
        if self.failing:
            line += f"; {self.failing} of {self.size} elements fail"
            if self.pattern:
                line += f", at {self.pattern}"
        return line


# The index letters of each result array (batched; unbatched drops the first).
AXES = {
    "output": ("n", "o", "l"),
    "grad_input": ("n", "c", "l"),
    "grad_weight": ("o", "c", "k"),
    "grad_bias": ("o",),
}


def index_pattern(failing: npt.NDArray[np.bool_], axes: Sequence[str]) -> str:
    """Where the ``True`` elements lie, axis by axis, in words.

    An axis where every index fails is left out; otherwise its failing
    indices are a single value, a range, a residue class (``l ≡ 255 (mod
    256)``), or listed.

    >>> mask = np.zeros((2, 8, 512), dtype=bool)
    >>> mask[:, 4:, 255::256] = True
    >>> index_pattern(mask, ("n", "o", "l"))
    'o in 4..7, l ≡ 255 (mod 256)'
    >>> mask[:, 5] = False
    >>> index_pattern(mask, ("n", "o", "l"))
    'o in 4..7 (3 of those 4), l ≡ 255 (mod 256)'
    """
    parts = []
    for axis, letter in enumerate(axes):
        others = tuple(i for i in range(failing.ndim) if i != axis)
        hit = np.flatnonzero(np.any(failing, axis=others))
        size = failing.shape[axis]
        if hit.size == 0 or hit.size == size:
            continue
        if hit.size == 1:
            parts.append(f"{letter} = {hit[0]}")
        elif hit[-1] - hit[0] + 1 == hit.size:
            parts.append(f"{letter} in {hit[0]}..{hit[-1]}")
        else:
            modulus = next(
                (m for m in range(size // 2, 1, -1) if np.all(hit % m == hit[0] % m)), None
            )
            span = int(hit[-1] - hit[0] + 1)
            if modulus is not None:
                parts.append(f"{letter} ≡ {hit[0] % modulus} (mod {modulus})")
            elif 2 * hit.size >= span:  # a range with a few gaps
                parts.append(f"{letter} in {hit[0]}..{hit[-1]} ({hit.size} of those {span})")
            else:
                shown = ", ".join(map(str, hit[:6])) + (", ..." if hit.size > 6 else "")
                parts.append(f"{letter} in {{{shown}}} ({hit.size} values)")
    return ", ".join(parts)


def _scalar(value: Any) -> float | complex:
    return complex(value) if np.iscomplexobj(value) else float(value)


def compare_array(
    fixture: Fixture, name: str, actual: npt.ArrayLike, precision: str = "exact"
) -> ArrayReport:
    """Compare one result array with the fixture; shape and dtype must match exactly."""
    if name not in fixture.expected:
        raise ValueError(
            f"{fixture.id}: no expected {name!r} in this case (it has {sorted(fixture.expected)})"
        )
    expected = fixture.expected[name]
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        raise ValueError(
            f"{fixture.id}: {name} has shape {actual.shape}, expected {expected.shape}"
        )
    if actual.dtype != expected.dtype:
        raise TypeError(f"{fixture.id}: {name} has dtype {actual.dtype}, expected {expected.dtype}")
    wide = np.complex128 if expected.dtype.kind == "c" else np.float64
    with np.errstate(all="ignore"):
        error = np.abs(actual.astype(wide) - expected.astype(wide))
        unit = unit_roundoff(fixture.dtype) * fixture.error_scale(name)
        # Where the error scale is 0 the exact value is 0: any error is infinite.
        units = np.where(error == 0, 0.0, error / unit)
        units = np.where(np.isnan(units), np.inf, units)
    if units.size == 0:
        return ArrayReport(name, 0.0, 0.0, allowed_units(fixture, name, precision), (), 0.0, 0.0)
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(units), units.shape))
    allowed = allowed_units(fixture, name, precision)
    failing = units > allowed
    axes = AXES[name][-actual.ndim :] if actual.ndim else ()
    return ArrayReport(
        name=name,
        max_abs_error=float(np.max(error)),
        max_units=float(units[worst]),
        allowed_units=allowed,
        worst_index=worst,
        actual_at_worst=_scalar(actual[worst]),
        expected_at_worst=_scalar(expected[worst]),
        failing=int(np.count_nonzero(failing)),
        size=int(units.size),
        pattern=index_pattern(failing, axes) if failing.any() else "",
    )


def compare(fixture: Fixture, precision: str = "exact", **results: Any) -> list[ArrayReport]:
    """Reports for every result given (``output=``, ``grad_input=``, ...; None is skipped).

    ``precision`` is ``"exact"`` (the fixture's tolerance) or ``"tf32"``
    (see :func:`allowed_units`).
    """
    unknown = set(results) - set(RESULT_NAMES)
    if unknown:
        raise TypeError(f"unknown result names {sorted(unknown)}; expected some of {RESULT_NAMES}")
    return [
        compare_array(fixture, name, value, precision)
        for name, value in results.items()
        if value is not None
    ]


def assert_matches(case: Fixture | str, precision: str = "exact", **results: Any) -> None:
    """Assert that results match a golden case within its recommended tolerance.

    Parameters
    ----------
    case : Fixture or str
        A loaded fixture or a case id (loaded from the default golden folder).
    precision : ``"exact"`` or ``"tf32"``
        ``"tf32"`` widens the tolerance of float32 and complex64 cases by what
        rounding every multiplicand to TF32 can cost (GPU convolutions with
        TF32 enabled); see :func:`allowed_units`.
    **results
        Any of ``output``, ``grad_input``, ``grad_weight``, ``grad_bias`` as
        NumPy-convertible arrays of the case's shape and dtype.

    Raises
    ------
    AssertionError
        Naming the array, the worst element, its value, the expected value
        and the error in units of ``u * error_scale``.
    """
    fixture = case if isinstance(case, Fixture) else load(case)
    if not results:
        raise TypeError("assert_matches needs at least one result array")
    failures = [report for report in compare(fixture, precision, **results) if not report.passed]
    if failures:
        raise AssertionError("\n".join(r.describe(fixture.id) for r in failures))


def check_directory(
    results_dir: Path | str, golden_dir: Path | str | None = None, precision: str = "exact"
) -> tuple[list[tuple[str, ArrayReport]], list[str]]:
    """Compare every ``<case_id>.npz`` in ``results_dir`` with the goldens.

    Returns the reports (case id, report) and the problems that stopped a
    comparison (unknown id, unreadable file, wrong shape or dtype, ...).
    Nothing in either folder is modified.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise GoldenFileError(f"{results_dir}: not a directory")
    reports: list[tuple[str, ArrayReport]] = []
    problems: list[str] = []
    files = sorted(results_dir.glob("*.npz"))
    if not files:
        problems.append(f"{results_dir}: no .npz result files")
    for path in files:
        case_id = path.stem
        if not path.name.isprintable():
            problems.append(f"{printable(str(path))}: a file name with control characters; skipped")
            continue
        try:
            fixture = load(case_id, golden_dir)
        except (ValueError, GoldenFileError) as error:
            problems.append(f"{path}: {error}")
            continue
        try:
            given = read_results(path, fixture)
            reports.extend((case_id, report) for report in compare(fixture, precision, **given))
        except (GoldenFileError, TypeError, ValueError) as error:
            problems.append(str(error) if str(error).startswith(str(path)) else f"{path}: {error}")
    return reports, problems


def read_results(path: Path, fixture: Fixture) -> dict[str, npt.NDArray[Any]]:
    """A results file for ``fixture``: only its result names, shapes and dtypes, judged first.

    Each member's ``.npy`` header is checked against the expected array
    before its data is read, so a file cannot make this read more than the
    expected arrays' bytes (plus one per member). Big-endian data is
    accepted and converted.
    """
    expected = fixture.expected

    def judge(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        if name not in expected:
            raise GoldenFileError(f"{path}: holds {name!r}; expected some of {sorted(expected)}")
        want = expected[name]
        if shape != want.shape:
            raise GoldenFileError(f"{path}: {name} has shape {shape}, expected {want.shape}")
        if dtype.newbyteorder("=") != want.dtype:
            raise GoldenFileError(f"{path}: {name} has dtype {dtype}, expected {want.dtype}")

    limit = sum(a.nbytes for a in expected.values())
    given = read_npz(path, judge, limit)
    if not given:
        raise GoldenFileError(f"{path}: holds no arrays; expected some of {sorted(expected)}")
    return given


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name, say) written as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def format_table(reports: list[tuple[str, ArrayReport]]) -> str:
    """A plain-text table: one row per (case, array)."""
    header = f"{'case':<36} {'array':<12} {'max |err|':>11} {'units':>9} {'allowed':>8}  result"
    rows = [header, "-" * len(header)]
    for case_id, r in reports:
        verdict = "pass" if r.passed else "FAIL"
        rows.append(
            f"{case_id:<36} {r.name:<12} {r.max_abs_error:>11.3g} {r.max_units:>9.3g} "
            f"{r.allowed_units:>8g}  {verdict}"
        )
    return "\n".join(rows)
