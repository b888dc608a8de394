"""Each result array seen as (items, rows, positions): batch items, channels, and what runs along.

The precision map and the bias are taken per *row* (an output channel of
``output``, an input channel of ``grad_input``, an output channel of
``grad_weight``), per *item* (a batch item) and per *tile* (a row by a block
of :data:`~uscale_ref.tolerance.rule.BLOCK` positions, all items together), so
that one wrong channel or tile among hundreds stands out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AXES", "Groups", "Layout", "describe_indices", "groups_of", "layout_of"]

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


@dataclass(frozen=True)
class Groups:
    """The row, batch item and tile of each judged element (all of an array, or the
    positions a compact fixture keeps), and each element's index along every axis.

    Attributes
    ----------
    layout : Layout
        The whole array's layout.
    flat : ndarray
        The judged elements' flat indices into the whole array (C order).
    item, row, tile : ndarray
        Each element's batch item, row and tile (``row * blocks + block``).
    coords : tuple of ndarray
        Each element's index along each axis of the whole array.
    """

    layout: Layout
    flat: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    row: npt.NDArray[np.int64]
    tile: npt.NDArray[np.int64]
    coords: tuple[npt.NDArray[np.int64], ...]

    @property
    def size(self) -> int:
        return int(self.flat.size)

    @property
    def whole(self) -> bool:
        """Whether every element of the array is judged."""
        return self.size == int(np.prod(self.layout.shape, dtype=np.int64))

    def pattern(self, failing: npt.NDArray[np.bool_]) -> str:
        """Where the failing judged elements lie, axis by axis, in words (see
        :func:`uscale_ref.verdict.report.index_pattern`); an axis along which every
        judged index fails is left out."""
        parts = []
        for axis, letter in enumerate(self.layout.axes):
            size = self.layout.shape[axis]
            judged = np.flatnonzero(np.bincount(self.coords[axis], minlength=size))
            hit = np.flatnonzero(np.bincount(self.coords[axis][failing], minlength=size))
            if hit.size == 0 or hit.size == judged.size:
                continue
            between = judged[(judged >= hit[0]) & (judged <= hit[-1])]
            if not self.whole and between.size == hit.size:
                # Every judged index between the first and last failing one fails.
                parts.append(f"{letter} in {hit[0]}..{hit[-1]}")
                continue
            parts.append(describe_indices(hit, self.layout.shape[axis], letter))
        return ", ".join(parts)


def groups_of(layout: Layout, flat: npt.NDArray[np.int64] | None = None) -> Groups:
    """The :class:`Groups` of the whole array, or of the elements at ``flat`` positions."""
    from .rule import BLOCK

    items, rows, positions = layout.canonical
    size = items * rows * positions
    flat = np.arange(size, dtype=np.int64) if flat is None else np.asarray(flat, dtype=np.int64)
    item, rest = np.divmod(flat, rows * positions) if rows * positions else (flat, flat)
    row, position = np.divmod(rest, positions) if positions else (rest, rest)
    tile = row * layout.blocks + position // BLOCK
    coords = np.unravel_index(flat, layout.shape) if layout.shape else ()
    return Groups(layout, flat, item, row, tile, tuple(np.asarray(c) for c in coords))


def describe_indices(hit: npt.NDArray[Any], size: int, letter: str) -> str:
    """Sorted indices along an axis of ``size`` in words: one value, a range, a residue
    class, a range with gaps, or a list."""
    if hit.size == 1:
        return f"{letter} = {hit[0]}"
    if hit[-1] - hit[0] + 1 == hit.size:
        return f"{letter} in {hit[0]}..{hit[-1]}"
    modulus = next((m for m in range(size // 2, 1, -1) if np.all(hit % m == hit[0] % m)), None)
    span = int(hit[-1] - hit[0] + 1)
    if modulus is not None:
        return f"{letter} ≡ {hit[0] % modulus} (mod {modulus})"
    if 2 * hit.size >= span:  # a range with a few gaps
        return f"{letter} in {hit[0]}..{hit[-1]} ({hit.size} of those {span})"
    shown = ", ".join(map(str, hit[:6])) + (", ..." if hit.size > 6 else "")
    return f"{letter} in {{{shown}}} ({hit.size} values)"
