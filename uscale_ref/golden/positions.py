"""Where a compact fixture keeps its expected values: the places tiled kernels break, and more.

A tiled kernel's mistakes land at predictable places: the first and last
rows and columns of a tile, the tiles' edges in channels and in length, the
group edges, the padding borders, the first and last batch items. A compact
fixture keeps, for each result array, every such place it can afford and
fills the rest of its budget with places drawn uniformly from the case's
seed. Positions are flat indices into the C-ordered result array, sorted.

Edge values along an axis of length ``size``: 0, 1, 2, the last three, and
``m - 1, m, m + 1`` for each multiple ``m`` of 8 below ``size``, ordered
so that the coarser tilings come first (multiples of 256, then 128, ... 8):
when a budget cannot take them all, it keeps the edges of the larger tiles.

``grad_weight`` is kept on a grid, a set of output channels by a set of
``(c, k)`` columns (its sums run over the whole batch and length, and a grid
makes them matrix products); ``grad_bias`` at the same output channels.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

from .inputs import seed_for, splitmix64
from .suite import CaseSpec

__all__ = ["TILES", "counts_for", "edge_values", "grid_for", "grid_size", "positions_for"]

#: The tile sizes whose edges a compact fixture looks at first.
TILES = (256, 128, 64, 32, 16, 8)
Index = npt.NDArray[np.int64]


def _ordered_unique(values: Iterable[int], size: int, limit: int | None = None) -> list[int]:
    """The distinct ``values`` in ``[0, size)``, in order, at most ``limit`` of them (taken
    lazily: ``values`` may be a long generator)."""
    seen: set[int] = set()
    kept: list[int] = []
    for value in values:
        if limit is not None and len(kept) >= limit:
            break
        if 0 <= value < size and value not in seen:
            seen.add(value)
            kept.append(value)
    return kept


def _tile_edges(size: int) -> Iterator[int]:
    for tile in TILES:
        for m in range(tile, size, tile):
            yield from (m - 1, m, m + 1)


def edge_values(size: int, extra: Iterable[int] = (), limit: int | None = None) -> list[int]:
    """The edge indices of an axis of ``size``, most telling first; ``extra`` (group edges,
    padding borders) come right after the ends. ``limit``: only the first so many (a long
    axis has about ``size / 4`` edges; they are not all listed to take a few).

    >>> edge_values(20)
    [0, 1, 2, 19, 18, 17, 15, 16, 7, 8, 9]
    """
    ends = [0, 1, 2, size - 1, size - 2, size - 3]
    return _ordered_unique(itertools.chain(ends, extra, _tile_edges(size)), size, limit)


def _uniform(seed: int, count: int, size: int) -> Index:
    """``count`` indices in ``[0, size)`` from SplitMix64: the top 53 bits as a fraction."""
    if count <= 0 or size <= 0:
        return np.zeros(0, dtype=np.int64)
    fractions = (splitmix64(seed, count) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    drawn: Index = np.minimum((fractions * size).astype(np.int64), size - 1)
    return drawn


def _axis_extras(spec: CaseSpec, name: str) -> list[list[int]]:
    """Per axis of result ``name``: the group edges and padding borders to keep early."""
    g = spec.geometry
    span = g.dilation * (g.kernel_size - 1)
    reach = span // g.stride + 2  # positions whose window meets the padding, and one more

    def group_edges(per_group: int) -> list[int]:
        return [v for b in range(per_group, per_group * g.groups, per_group)
                for v in (b - 1, b, b + 1)]  # fmt: skip

    out_length, length = g.out_length, g.in_length
    borders_out = [*range(reach), *range(out_length - reach, out_length)]
    borders_in = [*range(span + 2), *range(length - span - 2, length)]
    out_edges, in_edges = group_edges(g.out_channels // g.groups), group_edges(g.fan_in)
    batched = spec.batch_size is not None
    items: list[list[int]] = [[]] if batched else []
    if name == "output":
        return [*items, out_edges, borders_out]
    if name == "grad_input":
        return [*items, in_edges, borders_in]
    if name == "grad_weight":
        return [out_edges, [], []]
    return [out_edges]


def _result_shape(spec: CaseSpec, name: str) -> tuple[int, ...]:
    g = spec.geometry
    if name == "output":
        return g.output_shape
    if name == "grad_input":
        return spec.input_shape
    if name == "grad_weight":
        return spec.weight_shape
    return (spec.out_channels,)


def _choose(values: Iterable[int], size: int, count: int, seed: int) -> list[int]:
    """``count`` distinct indices of an axis: ``values`` first, then drawn ones."""
    if count >= size:
        return list(range(size))
    chosen = _ordered_unique(values, size, count)
    drawn = _uniform(seed, 4 * count + 16, size)
    return _ordered_unique(itertools.chain(chosen, drawn.tolist(), range(size)), size, count)


def grid_size(spec: CaseSpec, count: int) -> tuple[int, int]:
    """How many output channels (rows) and ``(c, k)`` columns grad_weight's grid of about
    ``count`` elements has: near a square, within the weight's own sizes."""
    out_channels, fan_in, kernel = spec.weight_shape
    rows = min(out_channels, max(1, math.isqrt(count)))
    wide = min(fan_in * kernel, max(1, count // rows))
    return min(out_channels, max(1, count // wide)), wide


def counts_for(spec: CaseSpec, count: int) -> dict[str, int]:
    """How many positions :func:`positions_for` keeps of each result, without choosing them
    (a reader checks a file's claim with this before it computes anything large)."""
    rows, wide = grid_size(spec, count)
    counts = {name: min(count, math.prod(_result_shape(spec, name)))
              for name in ("output", "grad_input")}  # fmt: skip
    counts["grad_weight"] = rows * wide
    if spec.bias:
        counts["grad_bias"] = rows
    return counts


def grid_for(spec: CaseSpec, count: int) -> tuple[Index, Index]:
    """grad_weight's grid of a compact fixture: its output channels and flat ``(c, k)``
    columns, both sorted (grad_bias is kept at the same output channels)."""
    rows, columns = _grid(spec, count, seed_for(spec.input_id, "positions/grad_weight"))
    return np.array(rows, dtype=np.int64), np.array(columns, dtype=np.int64)


def _grid(spec: CaseSpec, count: int, seed: int) -> tuple[list[int], list[int]]:
    """grad_weight's grid: output channels and flat ``(c, k)`` columns, about ``count`` in all."""
    out_channels, fan_in, kernel = spec.weight_shape
    columns = fan_in * kernel
    rows, wide = grid_size(spec, count)
    extras = _axis_extras(spec, "grad_weight")
    chosen_rows = _choose(edge_values(out_channels, extras[0], rows), out_channels, rows, seed)
    # Columns: whole kernels (every tap k) of the edge input channels first.
    channels = edge_values(fan_in, limit=wide)
    column_values = (c * kernel + k for c in channels for k in range(kernel))
    chosen_columns = _choose(column_values, columns, wide, seed + 1)
    return sorted(chosen_rows), sorted(chosen_columns)


#: Channels kept per column (batch item and position) of output and grad_input: the
#: column's input patch (or gradient window) then serves them all.
PER_COLUMN = 32
#: Columns that share one set of channels: a tile the exact sums take as a matrix product.
COLUMNS_PER_TILE = 16


def positions_for(spec: CaseSpec, name: str, count: int) -> Index:
    """The sorted flat positions a compact fixture of ``spec`` keeps for result ``name``.

    All of them when the array has at most ``count`` elements. ``output`` and
    ``grad_input`` are kept by *tiles*: :data:`COLUMNS_PER_TILE` columns (a
    batch item and a position along the length each) by :data:`PER_COLUMN`
    channels. The columns at the length's edges and borders and the batch's
    ends come first, then drawn ones; the channels run through the channel
    edges, then through every channel in a drawn order, tile after tile, so
    that every channel is kept somewhere when the budget allows.
    """
    shape = _result_shape(spec, name)
    size = math.prod(shape)
    seed = seed_for(spec.input_id, f"positions/{name}")
    if name in ("grad_weight", "grad_bias"):
        rows, grid_columns = grid_for(spec, count)
        if name == "grad_bias":
            return rows
        flat: Index = np.add.outer(rows * shape[1] * shape[2], grid_columns).reshape(-1)
        return flat
    if size <= count:
        return np.arange(size, dtype=np.int64)
    extras = _axis_extras(spec, name)
    batched = len(shape) == 3
    items, channels, length = shape if batched else (1, *shape)
    per_column = min(channels, PER_COLUMN)
    wanted = -(-count // per_column)
    tiles = -(-wanted // COLUMNS_PER_TILE)
    channels_wanted = tiles * per_column + per_column
    # Only as many edges as the budget can take (a long axis has a quarter of its length).
    item_edges = edge_values(items, limit=wanted) if batched else [0]
    length_edges = edge_values(length, extras[-1], limit=wanted)
    channel_edges = edge_values(channels, extras[-2], limit=channels_wanted)
    # Columns: each length edge with a batch end or a drawn item, each item edge with a
    # drawn position, then drawn columns.
    drawn_items = _uniform(seed + 1, len(length_edges), items)
    edge_items = [item_edges[i % min(2, len(item_edges))] if i % 3 < 2 else int(drawn_items[i])
                  for i in range(len(length_edges))]  # fmt: skip
    columns: list[tuple[int, int]] = list(zip(edge_items, length_edges, strict=True))
    columns += list(zip(item_edges, _uniform(seed + 2, len(item_edges), length).tolist(),
                        strict=True))  # fmt: skip
    columns += [(0, 0), (items - 1, length - 1), (0, length - 1), (items - 1, 0)]
    picked = _ordered_unique((n * length + at for n, at in columns), items * length)
    picked = picked[: max(1, wanted // 2)]
    drawn = _uniform(seed + 3, 4 * wanted + 16, items * length).tolist()
    picked = _ordered_unique([*picked, *drawn], items * length)[:wanted]
    # The corners first, then channels per tile of columns: the edges in turn, then drawn.
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in shape], indexing="ij")).reshape(
        len(shape), -1
    )
    chosen: list[int] = np.ravel_multi_index(tuple(corners), shape).tolist()
    tiles = -(-len(picked) // COLUMNS_PER_TILE)
    shuffled = np.argsort(_uniform(seed + 4, channels, 2**62), kind="stable").tolist()
    walk = _ordered_unique([*channel_edges, *shuffled], channels)
    for tile in range(tiles):
        start = (tile * per_column) % len(walk)
        mine = _ordered_unique([*walk[start:], *walk[:start]], channels)[:per_column]
        for column in picked[tile * COLUMNS_PER_TILE : (tile + 1) * COLUMNS_PER_TILE]:
            n, position = divmod(column, length)
            chosen.extend((n * channels + c) * length + position for c in mine)
    result = np.sort(np.array(_ordered_unique(chosen, size)[:count], dtype=np.int64))
    attempt = 0
    while result.size < count:  # duplicates: top up with drawn places
        attempt += 1
        extra = _uniform(seed + 100 + attempt, 2 * (count - result.size) + 16, size)
        fresh = extra[~np.isin(extra, result)]
        _, first = np.unique(fresh, return_index=True)
        result = np.union1d(result, fresh[np.sort(first)][: count - result.size])
    return result.astype(np.int64)
