"""A pytest plugin (entry point ``pytest11``): golden cases as a parametrized fixture.

A test that takes a ``golden_case`` argument runs once per golden case, with
readable ids; the marker narrows the cases and ``--uscale-ref-golden DIR``
reads another folder::

    @pytest.mark.uscale_ref_golden(dtype="float32", filter="*_same_*")
    def test_my_kernel(golden_case):
        y = my_conv1d(golden_case.inputs["input"], golden_case.inputs["weight"],
                      golden_case.inputs["bias"], **golden_case.kwargs)
        golden_case.check(output=y)

``golden_case.check`` raises an ``AssertionError`` with the same report as
:func:`uscale_ref.testing.assert_conv1d`: the failing checks (bound,
precision, bias), where they fail, and the likely cause;
``--uscale-ref-plot DIR`` draws a picture of each failing case.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

__all__ = ["GoldenCase"]


class GoldenCase:
    """One golden case, as a test sees it: inputs, keyword arguments and ``check``."""

    def __init__(self, case_id: str, directory: str | None, plots: str | None = None) -> None:
        self.id, self.directory, self.plots = case_id, directory, plots
        self._fixture: Any = None

    @property
    def fixture(self) -> Any:
        if self._fixture is None:
            from uscale_ref import golden

            self._fixture = golden.load(self.id, self.directory)
        return self._fixture

    @property
    def inputs(self) -> dict[str, Any]:
        """``input``, ``weight``, ``bias`` (None without bias), ``grad_output``: fresh copies
        on every access, so a test that changes them changes nothing for the next."""
        return {k: None if v is None else v.copy() for k, v in self.fixture.inputs.items()}

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of upstream's signature (stride, padding, ...)."""
        return dict(self.fixture.kwargs)

    @property
    def dtype(self) -> str:
        """The case's dtype name."""
        return str(self.fixture.dtype)

    def check(
        self,
        precision: str = "exact",
        *,
        accumulate: str | None = None,
        skip: str | Sequence[str] | None = None,
        plot: str | Path | None = None,
        algorithm: str = "direct",
        rounding: str = "nearest",
        **results: Any,
    ) -> None:
        """Assert ``output=``, ``grad_input=``, ... pass; a failure names its likely cause.

        ``precision``, ``accumulate``, ``skip``, ``algorithm`` and ``rounding`` as for
        :func:`uscale_ref.testing.assert_conv1d`; ``plot``, a PNG path: on
        failure, draw the case's picture there and name it in the message
        (``--uscale-ref-plot DIR`` does so for every failing case).

        Raises
        ------
        TypeError
            When no result is given (nothing would be checked).
        """
        __tracebackhide__ = True  # pytest shows the message, not this code
        from uscale_ref.testing import to_numpy
        from uscale_ref.verdict import judge
        from uscale_ref.verdict.diagnosis import NO_CAUSE, explain

        given = {k: to_numpy(v) for k, v in results.items() if v is not None}
        if not given:
            raise TypeError(
                "check needs at least one result: output=, grad_input=, grad_weight= or grad_bias="
            )
        fixture = self.fixture
        verdict = judge(fixture, given, precision, accumulate, skip, keep=True,
                        algorithm=algorithm, rounding=rounding)  # fmt: skip
        if verdict.passed:
            return
        drawn = plot is not None or self.plots is not None
        explain(verdict, fixture, given, precision, accumulate, whole_reference=drawn)
        lines = [verdict.describe(), f"likely cause: {verdict.cause or NO_CAUSE}"]
        if plot is None and self.plots is not None:
            from uscale_ref.verdict.picture import picture_name, prepare_folder

            plot = prepare_folder(self.plots, "--uscale-ref-plot") / picture_name(self.id)
        if plot is not None:
            lines.append(f"picture: {verdict.plot(plot)}")
        raise AssertionError("\n".join(lines))

    def __repr__(self) -> str:
        return f"GoldenCase({self.id!r})"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--uscale-ref-golden",
        default=None,
        help="folder of uscale_ref golden cases for the golden_case fixture (default: the "
        "committed suite)",
    )
    parser.addoption(
        "--uscale-ref-plot",
        default=None,
        metavar="DIR",
        help="draw a picture of each failing golden_case check into DIR (needs matplotlib)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "uscale_ref_golden(dtype=None, filter=None): the golden cases a golden_case "
        "argument runs over (dtype: a name or a list; filter: a glob on case ids)",
    )
    if config.getoption("--uscale-ref-plot", None) is not None:
        from uscale_ref.verdict.picture import require_matplotlib

        folder = Path(config.getoption("--uscale-ref-plot"))
        try:
            require_matplotlib("--uscale-ref-plot")
            if folder.exists() and not folder.is_dir():
                raise ValueError(f"--uscale-ref-plot {folder}: not a folder")
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "golden_case" not in metafunc.fixturenames:
        return
    from uscale_ref.testing.drawing import dtype_list
    from uscale_ref.testing.runner import NUMPY_DTYPES, _case_ids

    marker = metafunc.definition.get_closest_marker("uscale_ref_golden")
    options = dict(marker.kwargs) if marker else {}
    unknown = set(options) - {"dtype", "filter"}
    if unknown:
        raise pytest.UsageError(
            f"uscale_ref_golden marker: unknown argument(s) {sorted(unknown)}; "
            "it takes dtype= and filter="
        )
    try:
        dtypes = dtype_list(options.get("dtype"), NUMPY_DTYPES)
    except ValueError as error:
        raise pytest.UsageError(f"uscale_ref_golden marker: {error}") from None
    directory = metafunc.config.getoption("--uscale-ref-golden")
    plots = metafunc.config.getoption("--uscale-ref-plot")
    ids = _case_ids(directory, dtypes, options.get("filter"))
    metafunc.parametrize("golden_case", [GoldenCase(i, directory, plots) for i in ids], ids=ids)
