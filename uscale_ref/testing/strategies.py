"""Hypothesis strategies for conv1d problems: valid arguments, arrays, and exact expected results.

>>> from hypothesis import given
>>> from uscale_ref.testing.strategies import problems
>>> @given(problems(dtypes=["float64"]))
... def test_my_kernel(case):
...     assert case.expected["output"].shape[-1] >= 1
>>> test_my_kernel()

Each drawn ``case`` is a :class:`uscale_ref.golden.Fixture` built in memory:
``case.inputs``, ``case.kwargs`` (for upstream's signature) and
``case.expected``, exact results rounded once, to pass to
:func:`uscale_ref.golden.assert_matches`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from ..golden import Fixture
from ..golden.fixture import build
from ..golden.suite import CaseSpec
from .drawing import SIZES, _options, draw_spec, draw_specs, dtype_list

__all__ = ["case_specs", "draw_specs", "problems"]


@dataclass(frozen=True)
class _Hypothesis:
    draw: Any

    def integer(self, low: int, high: int) -> int:
        return int(self.draw(st.integers(low, high)))

    def sample(self, options: Sequence[Any]) -> Any:
        return self.draw(st.sampled_from(options))


def case_specs(
    dtypes: str | Sequence[str] | None = None,
    max_channels: int = 8,
    max_length: int = 24,
    max_kernel: int = 5,
    *,
    sizes: str = "small",
    constraints: Iterable[str | None] | None = None,
    scale_powers: Iterable[Sequence[float]] | None = None,
) -> st.SearchStrategy[CaseSpec]:
    """Valid conv1d problems as golden :class:`~uscale_ref.golden.CaseSpec` objects.

    Parameters
    ----------
    dtypes : str or sequence of str, optional
        One dtype name or several (default: float16, float32, float64,
        complex64, complex128).
    max_channels, max_length, max_kernel : int
        Bounds of the ``"small"`` problems.
    sizes : ``"small"`` or ``"large"``
        ``"large"``: channels to a few hundred, lengths to thousands, kernels
        to 31 (see :mod:`uscale_ref.testing.drawing`).
    constraints, scale_powers : optional
        Draw only these constraints and scale powers.
    """
    names = dtype_list(dtypes)
    if sizes not in SIZES:
        raise ValueError(f"sizes must be one of {SIZES}, got {sizes!r}")
    chosen, powers = _options(constraints, scale_powers)

    @st.composite
    def specs(draw: Any) -> CaseSpec:
        return draw_spec(
            _Hypothesis(draw), names, sizes, chosen, powers, max_channels, max_length, max_kernel
        )

    if sizes == "small":  # the bounds are checked now, not at the first draw
        draw_spec(_Fixed(), names, sizes, chosen, powers, max_channels, max_length, max_kernel)
    return specs()


class _Fixed:
    """A chooser that always takes the smallest choice: checks the arguments up front."""

    def integer(self, low: int, high: int) -> int:
        return low

    def sample(self, options: Sequence[Any]) -> Any:
        return options[0]


def problems(
    dtypes: str | Sequence[str] | None = None, **options: Any
) -> st.SearchStrategy[Fixture]:
    """Drawn problems as in-memory golden cases, with exact expected results.

    Takes the arguments of :func:`case_specs`.
    """

    def make(spec: CaseSpec) -> Fixture:
        arrays, metadata = build(spec)
        return Fixture(id=f"drawn:{spec.id}", metadata=metadata, arrays=arrays)

    return case_specs(dtypes, **options).map(make)
