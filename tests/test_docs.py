"""Every code example in the docs and the README runs.

``>>>`` examples run as doctests. Every other ```python block runs on its
own, exactly as printed (a fresh namespace, no names handed in); the test
functions it defines are then called for all their parametrized values, as
pytest would.
"""

from __future__ import annotations

import doctest
import inspect
import itertools
import re
from pathlib import Path

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
    return [GoldenCase(case_id, None) for case_id in ids]


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
        values = list(mark.args[1])
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


def _block_id(page: Path, number: int, block: str) -> str:
    """``page:number``, then the test functions the block defines (so ``-k jax`` finds them)."""
    names = re.findall(r"^def (test_\w+)", block, re.MULTILINE)
    return ":".join([_ids(page), str(number), *names])


BLOCKS = [
    pytest.param(page, number, block, id=_block_id(page, number, block))
    for page in PAGES
    for number, block in enumerate(FENCE.findall(page.read_text()), start=1)
    if ">>>" not in block
]


@pytest.mark.parametrize(("page", "number", "block"), BLOCKS)
def test_code_block_runs_on_its_own(page, number, block):
    namespace = {"__name__": "docs_example"}
    exec(compile(block, f"{page} (code block {number})", "exec"), namespace)
    tests = [v for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    calls = sum(_call_with_parameters(test) for test in tests)
    if tests and calls == 0:
        pytest.skip(f"every example test of block {number} skipped itself (optional package)")


def test_the_sample_failure_message_is_what_assert_matches_says():
    from uscale_ref import golden

    case = golden.load("f32_s2_p1_k3")
    x, w, b, _ = case.inputs.values()
    late_bias = uscale_ref.conv1d(x, w, None, **case.kwargs) + b[:, None]
    with pytest.raises(AssertionError) as failure:
        golden.assert_matches(case, output=late_bias)
    page = (ROOT / "docs" / "testing-your-kernel.md").read_text()
    sample = re.search(r"```text\n(f32_s2_p1_k3: .*?)```", page, re.DOTALL).group(1)
    assert " ".join(sample.split()) == " ".join(str(failure.value).split())
