"""The verdict on a kernel's results: bounds for how kernels accumulate, the precision
achieved, the errors' bias, the likely mistake, and a picture of where it goes wrong.

One case's results are judged array by array (:func:`judge`) with a
:class:`Rule`: the kernel's accumulation format (float32 for float16,
bfloat16 and complex32 cases, else the case's dtype, unless the kernel says
otherwise), whether its multiplicands were TF32, and which of the three
checks are on:

``bound``
    every element within what a correct kernel's roundings can cost
    (:meth:`Rule.bound`);
``precision``
    the significant bits achieved over the array, each row (channel), batch
    item and tile of 64 positions, at most
    :data:`~uscale_ref.tolerance.rule.MARGIN_BITS` short of the output format's
    (:mod:`uscale_ref.verdict.precision`);
``bias``
    no scale error in the errors' mean, over the array and per row
    (:mod:`uscale_ref.verdict.bias`).

docs/golden-format.md derives the rule and the false-failure probability.

>>> from uscale_ref import golden, verdict
>>> case = golden.load("f32_k3")
>>> report = verdict.judge(case, {"output": case.expected["output"]}).arrays[0]
>>> report.passed, report.precision.short()
(True, 'exact')
"""

from __future__ import annotations

from ..tolerance.rule import (
    ACCUMULATIONS,
    BLOCK,
    CHECKS,
    MARGIN_BITS,
    OUTPUT_ROUNDINGS,
    PRECISIONS,
    Z_LIMIT,
    Rule,
    rule_for,
)
from .case import CaseVerdict, assert_matches, compare, judge
from .directory import check_directory, format_table, read_results
from .report import ArrayReport, index_pattern, judge_array

__all__ = [
    "ACCUMULATIONS",
    "BLOCK",
    "CHECKS",
    "MARGIN_BITS",
    "OUTPUT_ROUNDINGS",
    "PRECISIONS",
    "Z_LIMIT",
    "ArrayReport",
    "CaseVerdict",
    "Rule",
    "assert_matches",
    "check_directory",
    "compare",
    "format_table",
    "index_pattern",
    "judge",
    "judge_array",
    "read_results",
    "rule_for",
]
