"""Testing a conv1d kernel against uscale_ref: one call, a pytest plugin, Hypothesis strategies.

- :func:`assert_conv1d` runs an implementation over every golden case and
  over drawn problems and raises one readable ``AssertionError`` whose
  failing cases each carry a ``likely cause:`` line
  (:mod:`uscale_ref.testing.diagnosis` tries the classic mistakes);
- :mod:`uscale_ref.testing.plugin` (registered with pytest automatically)
  parametrizes a ``golden_case`` fixture over the golden cases;
- :mod:`uscale_ref.testing.strategies` draws valid problems with exact
  expected results (needs Hypothesis);
- :mod:`uscale_ref.testing.overflow` holds a kernel that casts its own
  operands to their formats' overflow conventions (``assert_conv1d(...,
  cast=True)``).
"""

from __future__ import annotations

from .diagnosis import MISTAKES, NO_CAUSE, diagnose
from .overflow import judge_overflow, overflow_problem
from .runner import ConformanceReport, assert_conv1d, to_numpy

__all__ = [
    "MISTAKES",
    "NO_CAUSE",
    "ConformanceReport",
    "assert_conv1d",
    "diagnose",
    "judge_overflow",
    "overflow_problem",
    "to_numpy",
]
