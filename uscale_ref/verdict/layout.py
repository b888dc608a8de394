"""Each result array seen as (items, rows, positions): batch items, channels, and what runs along.

The precision map and the bias are taken per *row* (an output channel of
``output``, an input channel of ``grad_input``, an output channel of
``grad_weight``), per *item* (a batch item) and per *tile* (a row by a block
of :data:`~uscale_ref.verdict.rule.BLOCK` positions, all items together), so
that one wrong channel or tile among hundreds stands out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AXES", "Layout", "layout_of"]

# The index letters of each result array (batched; unbatched drops the first).
AXES = {
    "output": ("n", "o", "l"),
    "grad_input": ("n", "c", "l"),
    "grad_weight": ("o", "c", "k"),
    "grad_bias": ("o",),
}


@dataclass(frozen=True)
class Layout:
    """How an array of ``shape`` maps onto ``(items, rows, positions)``.

    Attributes
    ----------
    shape : tuple of int
        The array's own shape.
    axes : tuple of str
        Its index letters, e.g. ``("n", "o", "l")``.
    item, row : str or None
        The letter of the item axis and of the row axis (None when absent).
    position : str
        What the positions are, e.g. ``"l"`` or ``"c·K + k"``.
    """

    shape: tuple[int, ...]
    axes: tuple[str, ...]
    item: str | None
    row: str | None
    position: str

    @property
    def canonical(self) -> tuple[int, int, int]:
        """``(items, rows, positions)``."""
        shape = self.shape
        if self.item is not None:
            return shape[0], shape[1], shape[2]
        if self.row is not None:
            return 1, shape[0], int(np.prod(shape[1:], dtype=np.int64))
        return 1, 1, int(np.prod(shape, dtype=np.int64))

    def view(self, a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``a`` (of :attr:`shape`) as ``(items, rows, positions)``."""
        return a.reshape(self.canonical)

    @property
    def blocks(self) -> int:
        """How many blocks of positions a row is cut into."""
        from .rule import BLOCK

        return max(1, -(-self.canonical[2] // BLOCK))

    def tile_name(self, row: int, block: int) -> str:
        """A tile in words: ``"o = 64, l in 0..63"``."""
        from .rule import BLOCK

        positions = self.canonical[2]
        first, last = block * BLOCK, min(positions, (block + 1) * BLOCK) - 1
        where = (
            f"{self.position} in {first}..{last}" if last > first else f"{self.position} = {first}"
        )
        return where if self.row is None else f"{self.row} = {row}, {where}"


def layout_of(name: str, shape: tuple[int, ...]) -> Layout:
    """The layout of result ``name`` (``output``, ``grad_input``, ...) of this shape."""
    axes = AXES[name][-len(shape) :] if shape else ()
    if name in ("output", "grad_input"):
        if len(shape) == 3:
            return Layout(shape, axes, axes[0], axes[1], axes[2])
        return Layout(shape, axes, None, axes[0] if axes else None, axes[-1] if axes else "l")
    if name == "grad_weight":
        return Layout(shape, axes, None, "o", "c·K + k")
    return Layout(shape, axes, None, None, "o")
