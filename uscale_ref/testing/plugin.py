"""A pytest plugin (entry point ``pytest11``): golden cases as a parametrized fixture.

A test that takes a ``golden_case`` argument runs once per golden case, with
readable ids; the marker narrows the cases and ``--uscale-ref-golden DIR``
reads another folder::

    @pytest.mark.uscale_ref_golden(dtype="float32", filter="*_same_*")
    def test_my_kernel(golden_case):
        y = my_conv1d(golden_case.inputs["input"], golden_case.inputs["weight"],
                      golden_case.inputs["bias"], **golden_case.kwargs)
        golden_case.check(output=y)

``golden_case.check`` raises an ``AssertionError`` naming the worst element
and the likely cause of a failure.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["GoldenCase"]


class GoldenCase:
    """One golden case, as a test sees it: inputs, keyword arguments and ``check``."""

    def __init__(self, case_id: str, directory: str | None) -> None:
        self.id, self.directory = case_id, directory
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

    def check(self, precision: str = "exact", **results: Any) -> None:
        """Assert ``output=``, ``grad_input=``, ... match; a failure names its likely cause.

        Raises
        ------
        TypeError
            When no result is given (nothing would be checked).
        """
        from uscale_ref import golden
        from uscale_ref.testing import diagnose, to_numpy

        given = {k: to_numpy(v) for k, v in results.items() if v is not None}
        if not given:
            raise TypeError(
                "check needs at least one result: output=, grad_input=, grad_weight= or grad_bias="
            )
        failing = [r for r in golden.compare(self.fixture, precision, **given) if not r.passed]
        if failing:
            lines = [r.describe(self.id) for r in failing]
            cause = diagnose(self.fixture, given, [r.name for r in failing], precision)
            raise AssertionError("\n".join([*lines, f"likely cause: {cause}"]))

    def __repr__(self) -> str:
        return f"GoldenCase({self.id!r})"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--uscale-ref-golden",
        default=None,
        help="folder of uscale_ref golden cases for the golden_case fixture (default: the "
        "committed suite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "uscale_ref_golden(dtype=None, filter=None): the golden cases a golden_case "
        "argument runs over (dtype: a name or a list; filter: a glob on case ids)",
    )


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
    ids = _case_ids(directory, dtypes, options.get("filter"))
    metafunc.parametrize("golden_case", [GoldenCase(i, directory) for i in ids], ids=ids)
