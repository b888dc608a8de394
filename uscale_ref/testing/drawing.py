"""Drawing valid conv1d problems: one recipe, driven by Hypothesis or by a seeded generator.

The recipe (:func:`draw_spec`) asks a *chooser* for integers and choices;
:mod:`uscale_ref.testing.strategies` hands it Hypothesis' ``draw`` (so
Hypothesis can shrink a failure), :func:`draw_specs` a NumPy generator (so
:func:`~uscale_ref.testing.assert_conv1d` draws the same problems for the
same seed, with or without Hypothesis installed, and inside a user's own
``@given`` test).

Two sizes:

``"small"``
    up to 8 channels, length 24, kernel 5: every argument combination,
    cheap enough for hundreds of problems;
``"large"``
    sizes where kernels tile: channels up to a few hundred, lengths up to
    several thousand, kernels up to 31, as dense, depthwise, grouped,
    dilated and patchify (stride = kernel) layers; each problem's exact sums
    are kept to about :data:`LARGE_WORK` multiply-adds (a second or two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..constraints import check_constraint
from ..golden.suite import DTYPES, FULL_DTYPES, CaseSpec
from ..scales import check_scale_power

__all__ = ["LARGE_WORK", "SIZES", "Chooser", "draw_spec", "draw_specs", "dtype_list"]

CONSTRAINTS: tuple[str | None, ...] = (
    None, "gmean", "hmean", "amean", "to_output_scale", "to_grad_input_scale",
)  # fmt: skip
SCALE_POWERS: tuple[tuple[float, float, float], ...] = ((0.5, 0.5, 0.5), (1.0, 0.25, 0.75))
SIZES = ("small", "large")
#: The most multiply-adds one large drawn problem's output sums take.
LARGE_WORK = 10**8


class Chooser(Protocol):
    def integer(self, low: int, high: int) -> int: ...  # low <= value <= high
    def sample(self, options: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class _Random:
    rng: np.random.Generator

    def integer(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))

    def sample(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]


def dtype_list(
    dtypes: str | Iterable[str] | None, default: Sequence[str] = FULL_DTYPES
) -> list[str]:
    """``dtypes`` as a checked list: one name or several, each a golden dtype."""
    if dtypes is None:
        return list(default)
    names = [dtypes] if isinstance(dtypes, str) else list(dtypes)
    for name in names:
        if name not in DTYPES:
            raise ValueError(f"dtypes: {name!r} is not one of {', '.join(DTYPES)}")
    if not names:
        raise ValueError("dtypes: empty; name at least one dtype")
    return names


def _options(
    constraints: Iterable[str | None] | None, scale_powers: Iterable[Sequence[float]] | None
) -> tuple[list[str | None], list[tuple[float, float, float]]]:
    chosen = list(CONSTRAINTS) if constraints is None else [
        check_constraint(c) or None for c in constraints
    ]  # fmt: skip
    powers = list(SCALE_POWERS) if scale_powers is None else [
        check_scale_power(p) for p in scale_powers
    ]  # fmt: skip
    if not chosen or not powers:
        raise ValueError("constraints and scale_powers must each name at least one value")
    return chosen, powers


def draw_spec(
    choose: Chooser,
    dtypes: Sequence[str] = FULL_DTYPES,
    sizes: str = "small",
    constraints: Sequence[str | None] = CONSTRAINTS,
    scale_powers: Sequence[tuple[float, float, float]] = SCALE_POWERS,
    max_channels: int = 8,
    max_length: int = 24,
    max_kernel: int = 5,
) -> CaseSpec:
    """One valid problem, every choice asked of ``choose``."""
    if sizes == "large":
        geometry = _large_geometry(choose)
    else:
        geometry = _small_geometry(choose, max_channels, max_length, max_kernel)
    return CaseSpec(
        dtype=choose.sample(list(dtypes)),
        bias=bool(choose.integer(0, 1)),
        constraint=choose.sample(list(constraints)),
        scale_power=choose.sample(list(scale_powers)),
        suite="drawn",
        **geometry,
    )


def _small_geometry(
    choose: Chooser, max_channels: int, max_length: int, max_kernel: int
) -> dict[str, Any]:
    for name, value in (("max_channels", max_channels), ("max_length", max_length),
                        ("max_kernel", max_kernel)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
    groups = choose.integer(1, min(4, max_channels))
    in_channels = groups * choose.integer(1, max(1, max_channels // groups))
    out_channels = groups * choose.integer(1, max(1, max_channels // groups))
    kernel = choose.integer(1, max_kernel)
    dilation = choose.integer(1, 3)
    stride = choose.integer(1, 4)
    span = dilation * (kernel - 1) + 1
    padding: Any = choose.integer(0, span)
    if stride == 1 and choose.integer(0, 1):
        padding = choose.sample(["same", "valid", padding])
    padded = 0 if padding in ("same", "valid") else 2 * padding
    least = max(1, span - padded) if padding != "same" else 1
    length = choose.integer(least, max(least, max_length))
    batch = choose.sample([None, 1, 2, 3])
    return {
        "kernel_size": kernel, "batch_size": batch, "in_channels": in_channels,
        "out_channels": out_channels, "length": length, "stride": stride,
        "padding": padding, "dilation": dilation, "groups": groups,
    }  # fmt: skip


def _large_geometry(choose: Chooser) -> dict[str, Any]:
    kind = choose.sample(["dense", "depthwise", "grouped", "dilated", "patchify"])
    channels = choose.sample([65, 96, 128, 129, 192, 256, 320, 384])
    out_channels = choose.sample([64, 100, 128, 192, 256, 257, 320])
    kernel = choose.sample([3, 5, 9, 15, 17, 31])
    stride, dilation, groups = 1, 1, 1
    padding: int | str = "same"
    if kind == "depthwise":
        groups = out_channels = channels
    elif kind == "grouped":
        groups = choose.sample([2, 4, 8])
        channels, out_channels = groups * (channels // groups), groups * (out_channels // groups)
    elif kind == "dilated":
        dilation = choose.sample([2, 3, 8])
        kernel = min(kernel, 9)
    elif kind == "patchify":
        kernel = choose.sample([2, 4, 8, 16])
        stride, padding = kernel, 0
    length = choose.sample([257, 511, 1000, 1024, 2048, 2049, 4096])
    batch = choose.sample([None, 1, 2])

    def work() -> int:
        return int((batch or 1) * out_channels * (channels // groups) * kernel * length // stride)

    # Keep the exact sums to about LARGE_WORK multiply-adds, giving up length
    # (not below 257), then kernel length (not below 3, patchify keeps its own).
    while work() > LARGE_WORK and length > 257:
        length = max(257, length // 2)
    while work() > LARGE_WORK and kernel > 3 and kind != "patchify":
        kernel = max(3, kernel // 2)
    return {
        "kernel_size": kernel, "batch_size": batch, "in_channels": channels,
        "out_channels": out_channels, "length": length, "stride": stride,
        "padding": padding, "dilation": dilation, "groups": groups,
    }  # fmt: skip


def draw_specs(
    count: int,
    seed: int,
    dtypes: Sequence[str] = FULL_DTYPES,
    sizes: str = "small",
    constraints: Iterable[str | None] | None = None,
    scale_powers: Iterable[Sequence[float]] | None = None,
    select: Callable[[CaseSpec], bool] | None = None,
) -> list[CaseSpec]:
    """``count`` problems from a generator seeded with ``seed``: the same on every machine.

    ``select(spec)`` keeps only the problems it accepts (at most ``1000 *
    count`` are drawn to find them).

    >>> specs = draw_specs(2, seed=0, dtypes=["float64"])
    >>> specs[1].id
    'f64_n3c6o3l22_g3_s4_p3_k4_amean'
    >>> specs == draw_specs(2, seed=0, dtypes=["float64"])
    True
    """
    if sizes not in SIZES:
        raise ValueError(f"sizes must be one of {SIZES}, got {sizes!r}")
    chosen_constraints, powers = _options(constraints, scale_powers)
    choose = _Random(np.random.default_rng([seed, 0x5EED]))
    specs: list[CaseSpec] = []
    for _ in range(1000 * count):
        if len(specs) == count:
            break
        spec = draw_spec(choose, dtypes, sizes, chosen_constraints, powers)
        if select is None or select(spec):
            specs.append(spec)
    return specs
