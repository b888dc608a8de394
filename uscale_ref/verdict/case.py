"""The verdict on one case: every result array judged by one rule, said in one report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..tolerance.rule import Rule, rule_for
from .report import ArrayReport, judge_array

if TYPE_CHECKING:
    from ..golden.fixture import Fixture

__all__ = ["CaseVerdict", "assert_matches", "compare", "judge"]

RESULT_NAMES = ("output", "grad_input", "grad_weight", "grad_bias")


@dataclass
class CaseVerdict:
    """Every judged array of one case.

    Attributes
    ----------
    case_id : str
        The case.
    rule : Rule
        How it was judged.
    arrays : list of ArrayReport
        One per result given.
    picture : Path or None
        The picture drawn of it, once :meth:`plot` wrote one.
    cause : str or None
        The likely cause of a failure, once
        :func:`uscale_ref.verdict.diagnosis.explain` named it.
    """

    case_id: str
    rule: Rule
    arrays: list[ArrayReport] = field(default_factory=list)
    picture: Path | None = None
    cause: str | None = None

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self.arrays)

    @property
    def failing(self) -> list[ArrayReport]:
        return [report for report in self.arrays if not report.passed]

    def describe(self) -> str:
        """The failing arrays' lines (every array's when none fails)."""
        shown = self.failing or self.arrays
        return "\n".join(report.describe(self.case_id) for report in shown)

    def plot(self, path: str | Path, arrays: Iterable[str] | None = None) -> Path:
        """Draw the precision map and error histogram of each array to ``path`` (PNG).

        ``arrays``: only these (e.g. ``["output"]``); default every judged array.
        Needs matplotlib (``pip install uscale-ref[plot]``).
        """
        from .picture import draw

        names = None if arrays is None else list(arrays)
        self.picture = draw(self, Path(path), names)
        return self.picture


def _rule(
    fixture: Fixture,
    precision: str,
    accumulate: str | None,
    skip: str | Iterable[str] | None,
    algorithm: str = "direct",
    rounding: str = "nearest",
) -> Rule:
    return rule_for(fixture.dtype, precision, accumulate, skip, algorithm=algorithm,
                    rounding=rounding)  # fmt: skip


def judge(
    fixture: Fixture,
    results: dict[str, Any],
    precision: str = "exact",
    accumulate: str | None = None,
    skip: str | Iterable[str] | None = None,
    reference: bool | dict[str, Any] = False,
    keep: bool = False,
    algorithm: str = "direct",
    rounding: str = "nearest",
) -> CaseVerdict:
    """Judge ``results`` (NumPy arrays by result name; None is skipped) against ``fixture``.

    ``reference=True`` also evaluates the case with uscale_ref in its own
    dtype and reports that correct evaluation's precision beside each array's
    (a dict of such results may be passed instead). ``keep``: failing arrays
    keep their element-wise figures for :func:`uscale_ref.verdict.diagnosis.explain`,
    which releases them. ``algorithm="fft"`` or ``"winograd"``: the kernel convolves by
    transforms, and the bound allows the normwise error of one
    (:mod:`uscale_ref.verdict.algorithm`).
    ``rounding="stochastic"``: the kernel rounds its results stochastically; each may
    miss by a whole unit in the last place, and their mean must show no bias at all.
    """
    unknown = set(results) - set(RESULT_NAMES)
    if unknown:
        raise TypeError(f"unknown result names {sorted(unknown)}; expected some of {RESULT_NAMES}")
    rule = _rule(fixture, precision, accumulate, skip, algorithm, rounding)
    references: dict[str, Any] = {}
    if reference is True:
        from .reference import correct_results

        references = correct_results(fixture)
    elif isinstance(reference, dict):
        references = reference
    verdict = CaseVerdict(fixture.id, rule)
    for name, value in results.items():
        if value is None:
            continue
        verdict.arrays.append(
            judge_array(fixture, name, np.asarray(value), rule, references.get(name), keep)
        )
    return verdict


def compare(
    fixture: Fixture,
    precision: str = "exact",
    *,
    accumulate: str | None = None,
    skip: str | Iterable[str] | None = None,
    algorithm: str = "direct",
    rounding: str = "nearest",
    **results: Any,
) -> list[ArrayReport]:
    """Reports for every result given (``output=``, ``grad_input=``, ...; None is skipped).

    ``precision`` is ``"exact"`` or ``"tf32"`` (float32 and complex64 cases:
    every multiplicand may have been rounded to TF32); ``accumulate`` names
    the format the kernel sums in when it is not the default (float32 for
    the narrow dtypes, else the dtype); ``skip`` switches checks off by name
    (``"bound"``, ``"precision"``, ``"bias"``).
    """
    return judge(fixture, results, precision, accumulate, skip, algorithm=algorithm,
                 rounding=rounding).arrays  # fmt: skip


def assert_matches(
    case: Fixture | str,
    precision: str = "exact",
    *,
    accumulate: str | None = None,
    skip: str | Iterable[str] | None = None,
    plot: str | Path | None = None,
    algorithm: str = "direct",
    rounding: str = "nearest",
    **results: Any,
) -> None:
    """Assert that results pass the verdict of a golden case.

    Parameters
    ----------
    case : Fixture or str
        A loaded fixture or a case id (loaded from the default golden folder).
    precision : ``"exact"`` or ``"tf32"``
        ``"tf32"``: the float32 or complex64 kernel rounds its multiplicands
        to TF32 (GPU convolutions with TF32 enabled).
    accumulate : str, optional
        The format the kernel accumulates in, when not the default (float32
        for float16, bfloat16 and complex32 cases, else the case's own):
        ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``.
    skip : str or iterable of str, optional
        Checks to switch off: ``"bound"`` (element-wise), ``"precision"``
        (the bits achieved per array, row and tile), ``"bias"`` (a scale error
        in the errors' mean).
    plot : str or path, optional
        On failure, draw the case's picture to this PNG file and name it in
        the message (needs matplotlib).
    algorithm : ``"direct"``, ``"fft"`` or ``"winograd"``
        ``"fft"``: the kernel convolves by transforms; the bound allows an
        FFT's normwise error; ``"winograd"``: by minimal filtering on tiles,
        the bound allows an error bounded by each tile's inputs' norms
        (:mod:`uscale_ref.verdict.algorithm`).
    rounding : ``"nearest"`` or ``"stochastic"``
        ``"stochastic"``: the kernel rounds its results up or down at random
        (unbiased); each may miss by a whole unit in the last place, and the
        bias check expects no bias at all instead of a rounding convention's.
    **results
        Any of ``output``, ``grad_input``, ``grad_weight``, ``grad_bias`` as
        NumPy-convertible arrays of the case's shape and dtype.

    Raises
    ------
    AssertionError
        Naming each failing array and check: the worst element, the
        precision and the bias, with where they fall short.
    """
    __tracebackhide__ = True  # pytest shows the message, not this code
    from ..golden.fixture import Fixture
    from ..golden.store import load

    fixture = case if isinstance(case, Fixture) else load(case)
    if not any(value is not None for value in results.values()):
        raise TypeError("assert_matches needs at least one result array")
    verdict = judge(fixture, results, precision, accumulate, skip, reference=plot is not None,
                    algorithm=algorithm, rounding=rounding)  # fmt: skip
    if not verdict.passed:
        text = verdict.describe()
        if plot is not None:
            text += f"\npicture: {verdict.plot(plot)}"
        raise AssertionError(text)
