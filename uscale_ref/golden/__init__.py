"""Golden fixtures: expected conv1d results for other implementations to test against.

>>> from uscale_ref import golden
>>> len(golden.cases()) >= 150
True
>>> case = golden.load("f64_g2_k3")
>>> sorted(case.expected)
['grad_bias', 'grad_input', 'grad_weight', 'output']

See ``docs/golden-format.md`` for the file format.
"""

# Judging results belongs to uscale_ref.verdict; its main names are offered here
# too, where fixture users look for them (the verdict reads fixtures only when called).
from ..verdict import (
    PRECISIONS,
    ArrayReport,
    CaseVerdict,
    assert_matches,
    check_directory,
    compare,
    format_table,
)
from .errors import GoldenFileError, SweepError
from .fixture import FORMAT_VERSION, Fixture, read
from .store import cases, default_dir, generate, load, verify
from .suite import CaseSpec, suite_specs

__all__ = [
    "FORMAT_VERSION",
    "PRECISIONS",
    "ArrayReport",
    "CaseSpec",
    "CaseVerdict",
    "Fixture",
    "GoldenFileError",
    "SweepError",
    "assert_matches",
    "cases",
    "check_directory",
    "compare",
    "default_dir",
    "format_table",
    "generate",
    "load",
    "read",
    "suite_specs",
    "verify",
]
