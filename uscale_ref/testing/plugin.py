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
        return dict(self.fixture.inputs)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.fixture.kwargs)

    @property
    def dtype(self) -> str:
        return str(self.fixture.dtype)

    def check(self, precision: str = "exact", **results: Any) -> None:
        """Assert ``output=``, ``grad_input=``, ... match; a failure names its likely cause."""
        from uscale_ref import golden
        from uscale_ref.testing import diagnose, to_numpy

        given = {k: to_numpy(v) for k, v in results.items() if v is not None}
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
    from uscale_ref.testing.runner import NUMPY_DTYPES, _case_ids

    marker = metafunc.definition.get_closest_marker("uscale_ref_golden")
    options = dict(marker.kwargs) if marker else {}
    dtype = options.get("dtype", NUMPY_DTYPES)
    dtypes = [dtype] if isinstance(dtype, str) else list(dtype)
    directory = metafunc.config.getoption("--uscale-ref-golden")
    ids = _case_ids(directory, dtypes, options.get("filter"))
    metafunc.parametrize("golden_case", [GoldenCase(i, directory) for i in ids], ids=ids)
