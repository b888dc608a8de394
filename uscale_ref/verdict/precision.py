"""The precision a kernel achieved, in significant bits, for an array and each row and tile.

Each element's error is divided by the yardstick ``sigma`` (the size of a
correct kernel's error there, :meth:`Rule.yardstick`); the root mean square
``rho`` of these ratios over a group of elements says how many times larger
than a correct kernel's the errors are, and

    bits = p - log2(rho)

(``p``: the output format's significant bits) is the precision achieved.
A correct kernel reaches about ``p`` or more; a group fails when it falls
:data:`~uscale_ref.tolerance.rule.MARGIN_BITS` bits short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..tolerance.layout import Groups

__all__ = ["HISTOGRAM_EDGES", "PrecisionFigure", "histogram", "precision_figure", "ratios"]

Float = npt.NDArray[np.float64]

#: Bin edges of the error histograms: log2(|error| / yardstick), in half bits.
HISTOGRAM_EDGES = np.arange(-40.0, 40.5, 0.5)


def ratios(error: Float, yardstick: Float) -> Float:
    """``|error| / yardstick`` element-wise: 0 where the error is 0, inf where the
    yardstick is 0 (an exact zero was required) or the error is NaN."""
    with np.errstate(all="ignore"):
        ratio = np.where(error == 0, 0.0, error / yardstick)
    ratio[np.isnan(ratio)] = np.inf
    return ratio


def _bits(mean_square: Float | float, p: float) -> Float:
    with np.errstate(divide="ignore"):
        return np.asarray(p - 0.5 * np.log2(mean_square), dtype=np.float64)


@dataclass(frozen=True)
class PrecisionFigure:
    """Significant bits achieved by one array, and where it falls short.

    Attributes
    ----------
    bits : float
        Over the whole array (inf when every element is exact).
    format_bits : int
        The output format's own: what a correct kernel reaches, about.
    required : float
        The least a group may show: ``format_bits - MARGIN_BITS``.
    row_bits, item_bits : ndarray
        Per row (channel) and per batch item (empty when the array has none).
    tile_bits : ndarray
        ``(rows, blocks)``: per row and block of :data:`~uscale_ref.tolerance.rule.BLOCK`
        positions, all items together.
    counts : ndarray
        The error histogram: elements per bin of ``log2(|error| / yardstick)``
        (:data:`HISTOGRAM_EDGES`), then two more: exact elements and infinite
        ratios.
    """

    bits: float
    format_bits: int
    required: float
    row_bits: Float
    item_bits: Float
    tile_bits: Float
    counts: npt.NDArray[np.int64] = field(repr=False)

    @property
    def passed(self) -> bool:
        """Whether the array, every row, every item and every tile reach :attr:`required`
        (a group without judged elements has a NaN figure and passes)."""
        return bool(
            self.bits >= self.required
            and not np.any(self.row_bits < self.required)
            and not np.any(self.item_bits < self.required)
            and not np.any(self.tile_bits < self.required)
        )

    @property
    def failing_tiles(self) -> int:
        return int(np.count_nonzero(self.tile_bits < self.required))

    @property
    def judged_tiles(self) -> int:
        """How many tiles hold judged elements (all of them, unless the fixture is compact)."""
        return int(np.count_nonzero(~np.isnan(self.tile_bits)))

    @property
    def worst_tile(self) -> tuple[int, int]:
        """(row, block) of the least precise tile."""
        flat = np.where(np.isnan(self.tile_bits), np.inf, self.tile_bits)
        row, block = np.unravel_index(int(np.argmin(flat)), flat.shape)
        return int(row), int(block)

    def short(self) -> str:
        """``"11.2 bits"``, or ``"exact"`` when no element errs."""
        return _bits_text(self.bits)


def _bits_text(bits: float) -> str:
    if math.isinf(bits) and bits > 0:
        return "exact"
    if math.isinf(bits):
        return "no bits"
    return f"{bits:.1f} bits"


def histogram(ratio: Float) -> npt.NDArray[np.int64]:
    """Counts of ``log2(ratio)`` per bin of :data:`HISTOGRAM_EDGES`, then exact, then infinite."""
    finite = ratio[(ratio > 0) & np.isfinite(ratio)]
    logs = np.clip(np.log2(finite), HISTOGRAM_EDGES[0], HISTOGRAM_EDGES[-1] - 1e-9)
    # The edges are evenly spaced: each bin by arithmetic, not by search.
    width = HISTOGRAM_EDGES[1] - HISTOGRAM_EDGES[0]
    bins = len(HISTOGRAM_EDGES) - 1
    index = np.minimum(((logs - HISTOGRAM_EDGES[0]) / width).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    extra = [np.count_nonzero(ratio == 0), np.count_nonzero(np.isinf(ratio))]
    return np.concatenate([counts, extra]).astype(np.int64)


def precision_figure(
    ratio: Float, groups: Groups, format_bits: int, margin: float
) -> PrecisionFigure:
    """The :class:`PrecisionFigure` of the judged elements whose error ratios are ``ratio``
    (one per element of ``groups``). A row, item or tile with no judged element (a
    compact fixture's) has no figure: NaN, which passes."""
    layout = groups.layout
    items, rows, _ = layout.canonical
    blocks = layout.blocks
    squares = np.asarray(ratio, dtype=np.float64).reshape(-1) ** 2
    if squares.size == 0:
        nothing = np.full(0, np.nan)
        return PrecisionFigure(
            math.inf, format_bits, format_bits - margin, np.full(rows, np.nan), nothing,
            np.full((rows, blocks), np.nan), np.zeros(len(HISTOGRAM_EDGES) + 1, dtype=np.int64),
        )  # fmt: skip

    def mean_by(index: npt.NDArray[np.int64], length: int) -> Float:
        total = np.bincount(index, weights=squares, minlength=length)
        count = np.bincount(index, minlength=length)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean: Float = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        return mean

    tile = mean_by(groups.tile, rows * blocks).reshape(rows, blocks)
    row = mean_by(groups.row, rows)
    item = mean_by(groups.item, items) if layout.item is not None else np.full(0, np.nan)
    whole = float(np.mean(squares))
    return PrecisionFigure(
        bits=float(_bits(whole, format_bits)),
        format_bits=format_bits,
        required=format_bits - margin,
        row_bits=_bits(row, format_bits),
        item_bits=_bits(item, format_bits),
        tile_bits=_bits(tile, format_bits),
        counts=histogram(np.asarray(ratio).reshape(-1)),
    )


def bits_of(ratio: Any, format_bits: int) -> float:
    """The precision of a set of ratios as one figure (their root mean square)."""
    ratio = np.asarray(ratio, dtype=np.float64)
    if ratio.size == 0:
        return math.inf
    return float(_bits(float(np.mean(ratio * ratio)), format_bits))
