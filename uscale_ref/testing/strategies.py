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

from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ..golden import Fixture
from ..golden.fixture import build
from ..golden.suite import FULL_DTYPES, CaseSpec

__all__ = ["case_specs", "draw_specs", "problems"]

CONSTRAINTS = [None, "gmean", "hmean", "amean", "to_output_scale", "to_grad_input_scale"]


@st.composite
def case_specs(
    draw: Any,
    dtypes: Sequence[str] = FULL_DTYPES,
    max_channels: int = 8,
    max_length: int = 24,
    max_kernel: int = 5,
) -> CaseSpec:
    """A valid conv1d problem as a golden :class:`~uscale_ref.golden.CaseSpec` (bounded sizes)."""
    groups = draw(st.integers(1, 4))
    in_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
    out_channels = groups * draw(st.integers(1, max(1, max_channels // groups)))
    kernel = draw(st.integers(1, max_kernel))
    dilation = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 4))
    span = dilation * (kernel - 1) + 1
    padding: Any = draw(st.integers(0, span))
    if stride == 1 and draw(st.booleans()):
        padding = draw(st.sampled_from(["same", "valid", padding]))
    padded = 0 if padding in ("same", "valid") else 2 * padding
    least = max(1, span - padded) if padding != "same" else 1
    length = draw(st.integers(least, max(least, max_length)))
    return CaseSpec(
        dtype=draw(st.sampled_from(list(dtypes))),
        kernel_size=kernel,
        batch_size=draw(st.sampled_from([None, 1, 2, 3])),
        in_channels=in_channels,
        out_channels=out_channels,
        length=length,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        constraint=draw(st.sampled_from(CONSTRAINTS)),
        scale_power=draw(st.sampled_from([(0.5, 0.5, 0.5), (1.0, 0.25, 0.75)])),
        suite="drawn",
    )


def problems(dtypes: Sequence[str] = FULL_DTYPES, **sizes: int) -> st.SearchStrategy[Fixture]:
    """Drawn problems as in-memory golden cases, with exact expected results."""

    def make(spec: CaseSpec) -> Fixture:
        arrays, metadata = build(spec)
        return Fixture(id=f"drawn:{spec.id}", metadata=metadata, arrays=arrays)

    return case_specs(dtypes, **sizes).map(make)


def draw_specs(count: int, seed: int, dtypes: Sequence[str]) -> list[CaseSpec]:
    """``count`` specs drawn by Hypothesis, the same for the same ``seed``."""
    specs: list[CaseSpec] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case_specs(dtypes))
    def collect(spec: CaseSpec) -> None:
        specs.append(spec)

    from hypothesis import seed as with_seed

    with_seed(seed)(collect)()
    return specs[:count]
