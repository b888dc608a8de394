"""Every code example in the docs and the README runs.

``>>>`` examples run as doctests. Other ```python blocks of a page run in
order in one namespace; the test functions they define are then called for
their parametrized values, as pytest would.
"""

from __future__ import annotations

import doctest
import inspect
import itertools
import re
from pathlib import Path

import numpy as np
import pytest

import uscale_ref

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _ids(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_doctests_in_page(page):
    result = doctest.testfile(
        str(page),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {page.name}"


def _golden_cases(function):
    """For a test taking the plugin's ``golden_case``: a few cases its marker selects."""
    from uscale_ref.testing.plugin import GoldenCase
    from uscale_ref.testing.runner import NUMPY_DTYPES, _case_ids

    marks = [m for m in getattr(function, "pytestmark", []) if m.name == "uscale_ref_golden"]
    options = dict(marks[0].kwargs) if marks else {}
    dtype = options.get("dtype", NUMPY_DTYPES)
    ids = _case_ids(None, [dtype] if isinstance(dtype, str) else dtype, options.get("filter"))
    return [GoldenCase(case_id, None) for case_id in ids[:4]]


def _call_with_parameters(function):
    if "golden_case" in inspect.signature(function).parameters:
        for case in _golden_cases(function):
            function(golden_case=case)
        return 1
    marks = [m for m in getattr(function, "pytestmark", []) if m.name == "parametrize"]
    grids = []
    for mark in marks:
        names = (
            [n.strip() for n in mark.args[0].split(",")]
            if isinstance(mark.args[0], str)
            else list(mark.args[0])
        )
        values = list(mark.args[1])[:4]
        grids.append([dict(zip(names, v if len(names) > 1 else (v,), strict=True)) for v in values])
    calls = 0
    for combination in itertools.product(*grids):
        arguments = {k: v for part in combination for k, v in part.items()}
        try:
            function(**arguments)
        except pytest.skip.Exception:
            continue
        calls += 1
    return calls


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_code_blocks_in_page(page):
    blocks = [b for b in FENCE.findall(page.read_text()) if ">>>" not in b]
    if not blocks:
        pytest.skip("no plain code blocks")
    # README's snippet calls "my_conv1d": the user's kernel; uscale_ref stands in.
    namespace = {
        "__name__": "docs_example",
        "pytest": pytest,
        "np": np,
        "my_conv1d": uscale_ref.conv1d,
    }
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    calls = sum(_call_with_parameters(test) for test in tests)
    assert calls > 0 or not tests, f"every example test in {page.name} skipped itself"
