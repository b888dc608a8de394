"""The three sums at chosen positions only, exact and rounded once, from inputs drawn on demand.

A compact fixture needs the expected values at a few thousand positions of
results too large to compute whole. Each is still a sum of products, made
exact the way :mod:`.ozaki` makes a matrix product exact:

* ``output`` and ``grad_input`` at arbitrary positions: for a block of
  positions, the weight row and the input patch (or the weight column and
  the gradient window) each position needs are gathered, already cut into
  integer slices, into matrices of the same shape and multiplied row by row
  (``sum_k a[i, k] b[i, k]``): every partial sum is an integer below 2**53,
  so the sum is exact in any order;
* ``grad_weight`` (and ``grad_bias``) on a grid of output channels by
  ``(c, k)`` columns: its sums run over the whole batch and length, so they
  are matrix products streamed over blocks of the batch and length, with a
  column of ones for the bias gradient, the inputs of each block drawn when
  it is reached.

Every input is cut under one power of two for the whole array (its
:meth:`Source.exponent`), so that a slice of an element is the same whether
the element was cut alone or with the whole array: an input small enough is
cut once and its slices gathered; a larger one is gathered and cut block by
block. The inputs come from a :class:`Source`: arrays in memory
(:class:`ArraySource`), or a case's seeds
(:class:`uscale_ref.golden.inputs.SeededSource`), which compute any element
on its own. Error scales follow :mod:`.bounds`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ..geometry import Conv1dGeometry
from . import bounds, ozaki

__all__ = [
    "ArraySource",
    "Grid",
    "Source",
    "Sums",
    "input_grad_at",
    "output_at",
    "weight_grad_grid",
]

Float = npt.NDArray[np.float64]
Index = npt.NDArray[np.int64]
# Each block's gathered operands take about this many elements per slice.
BLOCK_ELEMENTS = 2**21
# An input of at most this many elements is cut whole, once, and its slices gathered;
# a larger one is cut where it is gathered. Above about a million elements cutting it
# whole costs more (in time, and in memory: several slices of the whole array) than
# cutting the gathered elements, even at 20,000 positions per array (the bytes are the
# same either way).
WHOLE_ELEMENTS = 2**20
# grad_weight's grid takes this many positions of one batch item at a time.
GRID_LENGTH = 4096


class Source(Protocol):
    """Where the inputs come from: any element of ``input``, ``weight``, ``bias`` or
    ``grad_output`` by its flat index, the whole array, and a power of two above every
    magnitude (of each part, for complex values)."""

    @property
    def names(self) -> Sequence[str]: ...

    def shape(self, name: str) -> tuple[int, ...]: ...

    def at(self, name: str, flat: Index) -> npt.NDArray[Any]: ...

    def whole(self, name: str) -> npt.NDArray[Any]: ...

    def exponent(self, name: str) -> int: ...


@dataclass
class ArraySource:
    """Inputs held in memory (finite, real or complex; ``bias`` may be None)."""

    arrays: dict[str, npt.NDArray[Any] | None]
    _exponents: dict[str, int] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [name for name, value in self.arrays.items() if value is not None]

    def _array(self, name: str) -> npt.NDArray[Any]:
        value = self.arrays[name]
        assert value is not None
        return value

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._array(name).shape)

    def at(self, name: str, flat: Index) -> npt.NDArray[Any]:
        values: npt.NDArray[Any] = self._array(name).reshape(-1)[flat]
        return values

    def whole(self, name: str) -> npt.NDArray[Any]:
        return self._array(name)

    def exponent(self, name: str) -> int:
        if name not in self._exponents:
            values = self._array(name)
            parts = [values.real, values.imag] if np.iscomplexobj(values) else [values]
            top = max((float(np.max(np.abs(p))) for p in parts if p.size), default=0.0)
            self._exponents[name] = int(np.frexp(top)[1])
        return self._exponents[name]


@dataclass(frozen=True)
class Sums:
    """Values at positions: rounded to the target (per part), unscaled and rounded (per
    part, when asked for), and the error scales."""

    values: list[Float]
    unscaled: list[Float] | None
    error_scale: Float


def _parts(a: npt.NDArray[Any]) -> list[Float]:
    if np.iscomplexobj(a):
        return [a.real.astype(np.float64), a.imag.astype(np.float64)]
    return [a.astype(np.float64)]


def _l1(a: npt.NDArray[Any]) -> Float:
    if np.iscomplexobj(a):
        return np.abs(a.real.astype(np.float64)) + np.abs(a.imag.astype(np.float64))
    return np.abs(a.astype(np.float64))


class Operand:
    """One input cut into ``bits``-bit slices under one power of two for the whole array:
    its parts' slices, its magnitudes' slices and their top slices, gathered by flat index.

    ``extra``: a value appended as one more element (the bias to the weight, a one to the
    patches), whose flat index is the array's size; index ``size + 1`` reads as zero (the
    padding).
    """

    def __init__(self, source: Source, name: str, bits: int, extra: float | None = None) -> None:
        self.source, self.name, self.bits = source, name, bits
        self.size = int(np.prod(source.shape(name), dtype=np.int64))
        self.zero = self.size + 1
        self.complex = bool(np.iscomplexobj(source.at(name, np.zeros(1, dtype=np.int64))))
        self.exponent = int(source.exponent(name))
        self.extra = 0.0 if extra is None else extra
        if extra is not None:
            self.exponent = max(self.exponent, int(np.frexp(abs(extra))[1]))
        # Magnitudes |re| + |im| may reach twice a part's bound.
        self.magnitude_exponent = self.exponent + int(self.complex)
        self._whole: dict[str, Any] | None = None
        if self.size <= WHOLE_ELEMENTS:
            values = np.asarray(source.whole(name)).reshape(-1)
            values = np.concatenate([values, np.array([self.extra, 0], dtype=values.dtype)])
            magnitudes = _l1(values)
            self._whole = {
                "parts": [ozaki.split(p, _power(self.exponent), bits) for p in _parts(values)],
                "magnitude": ozaki.split(magnitudes, _power(self.magnitude_exponent), bits),
                "values": magnitudes,
            }

    def index(self, flat: Index, keep: Any) -> Index:
        """``flat`` with the elements not kept sent to the zero."""
        chosen: Index = np.where(keep, flat, self.zero) if np.ndim(keep) else flat
        return chosen

    def _values(self, index: Index) -> npt.NDArray[Any]:
        inside = index < self.size
        values = self.source.at(self.name, np.where(inside, index, 0))
        return np.where(inside, values, np.where(index == self.size, self.extra, 0))

    def parts(self, index: Index) -> list[list[Float]]:
        """Per part, the slices of the elements at ``index`` (from :meth:`index`)."""
        if self._whole is not None:
            return [[s[index] for s in slices] for slices in self._whole["parts"]]
        values = self._values(index)
        return [ozaki.split(p, _power(self.exponent), self.bits) for p in _parts(values)]

    def magnitude(self, index: Index) -> list[Float]:
        """The slices of the elements' magnitudes (``|re| + |im|``)."""
        if self._whole is not None:
            return [s[index] for s in self._whole["magnitude"]]
        return ozaki.split(_l1(self._values(index)), _power(self.magnitude_exponent), self.bits)

    def top(self, index: Index) -> tuple[Float, Float]:
        """The magnitudes' top slices cut down and up (:func:`bounds.top_slices`)."""
        values = (
            self._whole["values"][index] if self._whole is not None else _l1(self._values(index))
        )
        return bounds.top_slices(values, self.magnitude_exponent, self.bits)


def operand(source: Source, name: str, bits: int, extra: float | None = None) -> Operand:
    """The :class:`Operand` of ``name`` cut in ``bits``-bit slices, made once per source."""
    cache: dict[Any, Operand] | None = getattr(source, "_operands", None)
    if cache is None:
        cache = {}
        try:
            source._operands = cache  # type: ignore[attr-defined]
        except AttributeError:
            return Operand(source, name, bits, extra)
    key = (name, bits, extra)
    if key not in cache:
        cache[key] = Operand(source, name, bits, extra)
    return cache[key]


def _power(exponent: int) -> ozaki.Int:
    """An exponent as ozaki's splitting takes it (an integer array)."""
    return np.asarray(exponent, dtype=np.int64)


def _pad(slices: list[Float], count: int, other: list[Float]) -> list[Float]:
    """``slices`` and zero slices up to ``count``, shaped as its own or, when it has none
    (a part that is zero throughout), as the ``other`` part's of the same operand."""
    template = slices[0] if slices else other[0] if other else None
    if template is None:
        return slices
    return slices + [np.zeros_like(template)] * (count - len(slices))


def _stacked(
    left: list[list[Float]], right: list[list[Float]], conjugate: str | None, axis: int
) -> list[tuple[list[Float], list[Float]]]:
    """Per output part (real, then imaginary): the left and right slices whose product is
    that part of ``sum left * right``, real and imaginary parts stacked along the inner axis
    (the left's last; the right's ``axis``). ``conjugate``: ``"left"`` or ``"right"``."""
    if len(left) == 1 and len(right) == 1:
        return [(left[0], right[0])]
    if not (left[0] or left[1]) or not (right[0] or right[1]):
        return [([], []), ([], [])]  # one operand is zero throughout: so is the product
    count = max(len(s) for s in [*left, *right])
    lr, li = _pad(left[0], count, left[1]), _pad(left[1], count, left[0])
    rr, ri = _pad(right[0], count, right[1]), _pad(right[1], count, right[0])
    if conjugate == "left":
        li = [-s for s in li]
    elif conjugate == "right":
        ri = [-s for s in ri]

    def stack(a: list[Float], b: list[Float], along: int) -> list[Float]:
        return [np.concatenate([x, y], axis=along) for x, y in zip(a, b, strict=True)]

    return [
        (stack(lr, [-s for s in li], -1), stack(rr, ri, axis)),
        (stack(lr, li, -1), stack(ri, rr, axis)),
    ]


def _row_products(limbs: ozaki.Limbs, left: list[Float], right: list[Float]) -> None:
    """Add ``sum_k left[i, k] right[i, k]`` of every slice pair into ``limbs``, exactly.

    Deep slices hold only the small elements' last bits and are mostly zero: a pair with
    such a slice is summed over its non-zero entries only (``bincount``; every partial
    sum is still an integer below 2**53, so any order is exact).
    """
    chunk = ozaki.chunk_length(limbs.bits)
    rows = limbs.shape[0]
    inner = left[0].shape[1] if left else 0
    sparse = [[_nonzeros(s) for s in side] for side in (left, right)]
    for p, a in enumerate(left):
        for q, b in enumerate(right):
            thin = min((x for x in (sparse[0][p], sparse[1][q]) if x is not None),
                       key=lambda x: x[0].size, default=None)  # fmt: skip
            if thin is not None:
                row, column = thin
                if row.size:
                    product = a[row, column] * b[row, column]
                    sums = np.bincount(row, weights=product, minlength=rows).astype(np.float64)
                    limbs.add(p + q + 2, sums)
                continue
            for start in range(0, inner, chunk):
                part = slice(start, start + chunk)
                limbs.add(p + q + 2, np.einsum("ij,ij->i", a[:, part], b[:, part]))


def _nonzeros(slice_: Float) -> tuple[Index, Index] | None:
    """The non-zero entries of a mostly-zero slice (``None`` for a dense one)."""
    if np.count_nonzero(slice_) > slice_.size // 16:
        return None
    found = np.nonzero(slice_)
    return found[0].astype(np.int64), found[1].astype(np.int64)


def _row_scales(
    rows: int,
    bits: int,
    top: tuple[tuple[Float, Float], tuple[Float, Float]],
    exact: Callable[[Any], tuple[list[Float], list[Float]]],
    frame: int,
    factor: float,
) -> Float:
    """Error scales of row-by-row sums: bounds from the top slices; exact where they differ."""
    (left_down, left_up), (right_down, right_up) = top
    lower, upper = ozaki.Limbs((rows,), bits), ozaki.Limbs((rows,), bits)
    _row_products(lower, [left_down], [right_down])
    _row_products(upper, [left_up], [right_up])
    frames = np.full(rows, frame, dtype=np.int64)
    low = ozaki.round_scaled(lower, frames, abs(factor), "float64")
    high = ozaki.round_scaled(upper, frames, abs(factor), "float64")
    scale, ambiguous = bounds.settle(low, high)
    where = np.flatnonzero(ambiguous)
    if where.size:
        left, right = exact(where)
        limbs = ozaki.Limbs((where.size,), bits)
        _row_products(limbs, left, right)
        scale[where] = bounds.exact_round_up(limbs, frames[where], abs(factor))
    return scale


def _blocks(count: int, inner: int) -> list[slice]:
    step = max(1, BLOCK_ELEMENTS // max(1, inner))
    return [slice(start, min(count, start + step)) for start in range(0, count, step)]


def _row_sums(
    left: Operand,
    right: Operand,
    left_index: Index,
    right_index: Index,
    right_rows: Index,
    conjugate: str | None,
    factor: float,
    target: str,
    unscaled: bool,
    scales: bool = True,
) -> tuple[list[Float], list[Float] | None, Float]:
    """One block: the rows' sums of ``left * right``, the left gathered at ``left_index``
    (a row per position), the right at ``right_index`` (a row per distinct column) and
    spread to the positions by ``right_rows``."""
    rows = left_index.shape[0]
    bits = left.bits
    frame = left.exponent + right.exponent
    frames = np.full(rows, frame, dtype=np.int64)
    right_parts = [[s[right_rows] for s in part] for part in right.parts(right_index)]
    values, held = [], []
    for a, b in _stacked(left.parts(left_index), right_parts, conjugate, -1):
        limbs = ozaki.Limbs((rows,), bits)
        _row_products(limbs, a, b)
        values.append(ozaki.round_scaled(limbs, frames, factor, target))
        if unscaled:
            held.append(ozaki.round_scaled(limbs, frames, 1.0, target))

    def exact(where: Any) -> tuple[list[Float], list[Float]]:
        spread = [s[right_rows[where]] for s in right.magnitude(right_index)]
        return left.magnitude(left_index[where]), spread

    if not scales:
        return values, held if unscaled else None, np.zeros(rows)
    down, up = right.top(right_index)
    top = (left.top(left_index), (down[right_rows], up[right_rows]))
    magnitude_frame = left.magnitude_exponent + right.magnitude_exponent
    scale = _row_scales(rows, bits, top, exact, magnitude_frame, factor)
    return values, held if unscaled else None, scale


def _tile_sums(
    left: Operand,
    right: Operand,
    left_index: Index,
    right_index: Index,
    conjugate: str | None,
    factor: float,
    target: str,
    unscaled: bool,
    scales: bool = True,
) -> tuple[list[Float], list[Float] | None, Float]:
    """A tile: every left row (gathered at ``left_index``, ``(r, inner)``) times every right
    row (``right_index``, ``(c, inner)``), as matrix products of slices; results ``(r, c)``
    flattened row-major."""
    rows, columns = left_index.shape[0], right_index.shape[0]
    shape = (rows, columns)
    bits = left.bits
    frames = np.full(shape, left.exponent + right.exponent, dtype=np.int64)
    values, held = [], []
    for a, b in _stacked(left.parts(left_index), right.parts(right_index), conjugate, -1):
        limbs = ozaki.Limbs(shape, bits)
        ozaki.accumulate(limbs, a, [s.T for s in b])
        values.append(ozaki.round_scaled(limbs, frames, factor, target).reshape(-1))
        if unscaled:
            held.append(ozaki.round_scaled(limbs, frames, 1.0, target).reshape(-1))
    if not scales:
        return values, held if unscaled else None, np.zeros(rows * columns)
    (left_down, left_up), (right_down, right_up) = left.top(left_index), right.top(right_index)
    lower, upper = ozaki.Limbs(shape, bits), ozaki.Limbs(shape, bits)
    ozaki.accumulate(lower, [left_down], [right_down.T])
    ozaki.accumulate(upper, [left_up], [right_up.T])
    frame = np.full(shape, left.magnitude_exponent + right.magnitude_exponent, dtype=np.int64)
    low = ozaki.round_scaled(lower, frame, abs(factor), "float64")
    high = ozaki.round_scaled(upper, frame, abs(factor), "float64")
    scale, ambiguous = bounds.settle(low, high)
    where = np.flatnonzero(ambiguous.reshape(-1))
    if where.size:
        r, c = np.divmod(where, columns)
        limbs = ozaki.Limbs((where.size,), bits)
        _row_products(limbs, left.magnitude(left_index[r]), right.magnitude(right_index[c]))
        frames_at = frame.reshape(-1)[where]
        scale.reshape(-1)[where] = bounds.exact_round_up(limbs, frames_at, abs(factor))
    return values, held if unscaled else None, scale.reshape(-1)


def _tiles(columns: Index, rows: Index, inner: int) -> list[tuple[Index, Index, Index]] | None:
    """Positions that form tiles (a set of rows at every one of a set of columns), grouped:
    per tile the positions (row-major over its rows and columns), its rows and its columns;
    None when the positions form too few tiles to gain from matrix products."""
    order = np.lexsort((rows, columns))
    distinct, start = np.unique(columns[order], return_index=True)
    signatures: dict[bytes, list[int]] = {}
    sets = np.split(rows[order], start[1:])
    for j, row_set in enumerate(sets):
        signatures.setdefault(row_set.tobytes(), []).append(j)
    if len(signatures) * 8 > columns.size:
        return None
    at = np.split(order, start[1:])
    tiles = []
    for members in signatures.values():
        row_set = sets[members[0]]
        step = max(1, BLOCK_ELEMENTS // max(1, inner))
        for first in range(0, len(members), step):
            chosen = members[first : first + step]
            positions = np.stack([at[j] for j in chosen], axis=1)  # (rows, columns)
            tiles.append((positions.reshape(-1), row_set, distinct[chosen]))
    return tiles


def _by_column(columns: Index, inner: int) -> list[tuple[Index, Index, Index]]:
    """Blocks of positions grouped by their column: per block the positions (indices into
    the caller's arrays), the distinct columns, and each position's column among them."""
    order = np.argsort(columns, kind="stable")
    blocks = []
    for part in _blocks(columns.size, inner):
        chosen = order[part]
        distinct, spread = np.unique(columns[chosen], return_inverse=True)
        blocks.append((chosen, distinct, spread.reshape(-1)))
    return blocks


def _combine(
    count: int,
    blocks: list[tuple[Index, tuple[list[Float], list[Float] | None, Float]]],
) -> Sums:
    """The blocks' results put back in the positions' order."""
    parts = len(blocks[0][1][0]) if blocks else 1
    values = [np.zeros(count) for _ in range(parts)]
    unscaled = ([np.zeros(count) for _ in range(parts)]
                if blocks and blocks[0][1][1] is not None else None)  # fmt: skip
    scale = np.zeros(count)
    for chosen, (block_values, block_unscaled, block_scale) in blocks:
        for p in range(parts):
            values[p][chosen] = block_values[p]
            if unscaled is not None and block_unscaled is not None:
                unscaled[p][chosen] = block_unscaled[p]
        scale[chosen] = block_scale
    return Sums(values, unscaled, scale)


class _Weight:
    """The weight and the bias, drawn whole (they are small), as a source of one array
    ``(C_out, C_g K + 1)``: each row, then its bias (0 without one)."""

    names: Sequence[str] = ("weight",)

    def __init__(self, source: Source, geometry: Conv1dGeometry, with_bias: bool) -> None:
        weight = np.asarray(source.whole("weight")).reshape(geometry.out_channels, -1)
        bias = (np.asarray(source.whole("bias")) if with_bias
                else np.zeros(geometry.out_channels, dtype=weight.dtype))  # fmt: skip
        self.array = np.concatenate([weight, bias[:, None]], axis=1)
        self.bound = max(source.exponent("weight"), source.exponent("bias") if with_bias else 0)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def at(self, name: str, flat: Index) -> npt.NDArray[Any]:
        values: npt.NDArray[Any] = self.array.reshape(-1)[flat]
        return values

    def whole(self, name: str) -> npt.NDArray[Any]:
        return self.array

    def exponent(self, name: str) -> int:
        return self.bound


def output_at(
    source: Source,
    geometry: Conv1dGeometry,
    flat: Index,
    factor: float,
    target: str,
    unscaled: bool = False,
    scales: bool = True,
) -> Sums:
    """``factor * (sum_{i,k} w[o,i,k] x_pad[n, g C_g + i, l s + k d] + b[o])`` at ``flat``
    positions of the (batched) output, exactly, rounded once to ``target`` (the error
    scales zero unless ``scales``)."""
    g = geometry
    out_g, fan_in, kernel = g.out_channels // g.groups, g.fan_in, g.kernel_size
    inner = fan_in * kernel + 1
    bits = ozaki.slice_bits(2 * inner)  # two parts stacked for complex values
    weight = Operand(_Weight(source, g, "bias" in source.names), "weight", bits)
    patches = operand(source, "input", bits, extra=1.0)
    size = patches.size
    item, out, position = np.unravel_index(flat, (g.batch_size, g.out_channels, g.out_length))
    # A column: one batch item, one group, one position; its patch serves all its outputs.
    column = (item * g.groups + out // out_g) * g.out_length + position

    def patch_index(distinct: Index) -> Index:
        nb, rest = np.divmod(distinct, g.groups * g.out_length)
        group, lb = np.divmod(rest, g.out_length)
        channels = group[:, None] * fan_in + np.arange(fan_in)[None, :]
        taps = lb[:, None] * g.stride + np.arange(kernel)[None, :] * g.dilation - g.pad_left
        valid = (taps >= 0) & (taps < g.in_length)
        index = (nb[:, None, None] * g.in_channels + channels[:, :, None]) * g.in_length
        index = index + np.clip(taps, 0, g.in_length - 1)[:, None, :]
        index = np.where(valid[:, None, :], index, patches.zero).reshape(len(distinct), -1)
        return np.concatenate([index, np.full((len(distinct), 1), size)], axis=1)

    def weight_index(outputs: Index) -> Index:
        rows: Index = outputs[:, None] * inner + np.arange(inner)[None, :]
        return rows

    blocks = []
    tiles = _tiles(column, out, inner)
    if tiles is not None:
        for chosen, rows, columns in tiles:
            result = _tile_sums(weight, patches, weight_index(rows), patch_index(columns),
                                None, factor, target, unscaled, scales)  # fmt: skip
            blocks.append((chosen, result))
        return _combine(flat.size, blocks)
    for chosen, distinct, spread in _by_column(column, inner):
        result = _row_sums(weight, patches, weight_index(out[chosen]), patch_index(distinct),
                           spread, None, factor, target, unscaled, scales)  # fmt: skip
        blocks.append((chosen, result))
    return _combine(flat.size, blocks)


def input_grad_at(
    source: Source,
    geometry: Conv1dGeometry,
    flat: Index,
    factor: float,
    target: str,
    unscaled: bool = False,
    scales: bool = True,
) -> Sums:
    """``factor * sum conj(w[o,i,k]) delta[n,o,l]`` over ``l s + k d = t + p_l`` at ``flat``
    positions ``(n, c, t)`` of the (batched) input gradient, exactly, rounded once (the
    error scales zero unless ``scales``)."""
    g = geometry
    out_g, fan_in, kernel = g.out_channels // g.groups, g.fan_in, g.kernel_size
    inner = out_g * kernel
    bits = ozaki.slice_bits(2 * inner)
    weight = operand(source, "weight", bits)
    gradient = operand(source, "grad_output", bits)
    item, channel, position = np.unravel_index(flat, (g.batch_size, g.in_channels, g.in_length))
    # A column: one batch item, one group, one position; its gradient window serves all.
    column = (item * g.groups + channel // fan_in) * g.in_length + position

    def window_index(distinct: Index) -> Index:
        nb, rest = np.divmod(distinct, g.groups * g.in_length)
        group, tb = np.divmod(rest, g.in_length)
        outputs = group[:, None] * out_g + np.arange(out_g)[None, :]  # (columns, O_g)
        reach = tb[:, None] + g.pad_left - np.arange(kernel)[None, :] * g.dilation
        at = reach // g.stride
        valid = (reach >= 0) & (reach % g.stride == 0) & (at < g.out_length)
        at = np.clip(at, 0, g.out_length - 1)
        index = (nb[:, None, None] * g.out_channels + outputs[:, :, None]) * g.out_length
        index = np.where(valid[:, None, :], index + at[:, None, :], gradient.zero)
        result: Index = index.reshape(len(distinct), -1)
        return result

    def tap_index(channels: Index) -> Index:
        rows = (channels // fan_in)[:, None] * out_g + np.arange(out_g)[None, :]
        taps = (rows[:, :, None] * fan_in + (channels % fan_in)[:, None, None]) * kernel
        result: Index = (taps + np.arange(kernel)[None, None, :]).reshape(len(channels), -1)
        return result

    blocks = []
    tiles = _tiles(column, channel, inner)
    if tiles is not None:
        for chosen, rows, columns in tiles:
            result = _tile_sums(weight, gradient, tap_index(rows), window_index(columns),
                                "left", factor, target, unscaled, scales)  # fmt: skip
            blocks.append((chosen, result))
        return _combine(flat.size, blocks)
    for chosen, distinct, spread in _by_column(column, inner):
        result = _row_sums(weight, gradient, tap_index(channel[chosen]), window_index(distinct),
                           spread, "left", factor, target, unscaled, scales)  # fmt: skip
        blocks.append((chosen, result))
    return _combine(flat.size, blocks)


@dataclass(frozen=True)
class Grid:
    """``grad_weight`` on rows (output channels) by columns (flat ``c * K + k``), row-major,
    and ``grad_bias`` on the rows when the case has a bias."""

    weight: Sums
    bias: Sums | None


def weight_grad_grid(
    source: Source,
    geometry: Conv1dGeometry,
    rows: Index,
    columns: Index,
    factor: float,
    bias_factor: float | None,
    target: str,
    unscaled: bool = False,
    scales: bool = True,
) -> Grid:
    """``factor * sum_{n,l} delta[n,o,l] conj(x_pad[n, g C_g + c, l s + k d])`` for ``o`` in
    ``rows`` and ``c K + k`` in ``columns``, and ``bias_factor * sum_{n,l} delta[n,o,l]``
    for ``o`` in ``rows``: matrix products over blocks of the batch and length, exact,
    rounded once (the error scales zero unless ``scales``)."""
    g = geometry
    out_g = g.out_channels // g.groups
    width = len(columns) + 1  # a column of ones: the bias gradient
    length = max(1, min(g.out_length, GRID_LENGTH))
    bits = ozaki.slice_bits(2 * length)
    gradient = operand(source, "grad_output", bits)
    patches = operand(source, "input", bits, extra=1.0)
    n_parts = 2 if gradient.complex else 1
    factors = np.full((1, width), factor)
    factors[0, -1] = bias_factor if bias_factor is not None else 0.0
    values = [np.empty((len(rows), width)) for _ in range(n_parts)]
    held = [np.empty((len(rows), width)) for _ in range(n_parts)]
    error_scales = np.zeros((len(rows), width))
    for group in np.unique(rows // out_g):
        mine = np.flatnonzero(rows // out_g == group)
        stream = _Stream(g, rows[mine], columns, int(group), length, gradient, patches)
        limbs = [ozaki.Limbs((len(mine), width), bits) for _ in range(n_parts)]
        for left, right in stream.blocks(lambda op, index: op.parts(index)):
            for part, (a, b) in enumerate(_stacked(left, right, "right", 0)):
                ozaki.accumulate(limbs[part], a, b)
        frame = np.full((len(mine), width), gradient.exponent + patches.exponent)
        for part in range(n_parts):
            values[part][mine] = _round_columns(limbs[part], frame, factors, target)
            if unscaled:
                held[part][mine] = _round_columns(limbs[part], frame, np.ones((1, width)), target)
        if scales:
            error_scales[mine] = _grid_scales(stream, bits, np.abs(factors))
    weight = Sums([v[:, :-1].reshape(-1) for v in values],
                  [v[:, :-1].reshape(-1) for v in held] if unscaled else None,
                  error_scales[:, :-1].reshape(-1))  # fmt: skip
    bias = None
    if bias_factor is not None:
        bias = Sums([v[:, -1] for v in values], [v[:, -1] for v in held] if unscaled else None,
                    error_scales[:, -1])  # fmt: skip
    return Grid(weight, bias)


@dataclass
class _Stream:
    """One group's blocks of the batch and length: the gradient rows and the patch columns
    (plus a column of ones) each block multiplies."""

    geometry: Conv1dGeometry
    rows: Index
    columns: Index
    group: int
    length: int
    gradient: Operand
    patches: Operand

    def blocks(self, take: Callable[[Operand, Index], Any]) -> Any:
        g = self.geometry
        channel, tap = np.divmod(self.columns, g.kernel_size)
        for n in range(g.batch_size):
            for start in range(0, g.out_length, self.length):
                positions = np.arange(start, min(g.out_length, start + self.length))
                left = (n * g.out_channels + self.rows[:, None]) * g.out_length + positions
                taps = positions[:, None] * g.stride + tap[None, :] * g.dilation - g.pad_left
                inside = (taps >= 0) & (taps < g.in_length)
                base = (n * g.in_channels + self.group * g.fan_in + channel) * g.in_length
                right = base[None, :] + np.clip(taps, 0, g.in_length - 1)
                right = np.concatenate([right, np.full((len(positions), 1), self.patches.size)],
                                       axis=1)  # fmt: skip
                keep = np.concatenate([inside, np.ones((len(positions), 1), dtype=bool)], axis=1)
                index = self.patches.index(right, keep)
                yield take(self.gradient, left), take(self.patches, index)


def _grid_scales(stream: _Stream, bits: int, factors: Any) -> Float:
    """The grid's error scales: bounds from top slices; exact columns where they differ."""
    shape = (len(stream.rows), len(stream.columns) + 1)
    lower, upper = ozaki.Limbs(shape, bits), ozaki.Limbs(shape, bits)
    for (ld, lu), (rd, ru) in stream.blocks(lambda op, index: op.top(index)):
        ozaki.accumulate(lower, [ld], [rd])
        ozaki.accumulate(upper, [lu], [ru])
    frame = np.full(shape, stream.gradient.magnitude_exponent + stream.patches.magnitude_exponent)
    low = _round_columns(lower, frame, factors, "float64")
    high = _round_columns(upper, frame, factors, "float64")
    scale, ambiguous = bounds.settle(low, high)
    columns = np.flatnonzero(ambiguous.any(axis=0))
    if columns.size:
        # Every magnitude slice, for the ambiguous columns (the bias column always comes last).
        real = columns[columns < len(stream.columns)]
        sub = _Stream(stream.geometry, stream.rows, stream.columns[real], stream.group,
                      stream.length, stream.gradient, stream.patches)  # fmt: skip
        exact = ozaki.Limbs((shape[0], real.size + 1), bits)
        for left, right in sub.blocks(lambda op, index: op.magnitude(index)):
            ozaki.accumulate(exact, left, right)
        carried = exact.normalized()
        for j, column in enumerate([*real.tolist(), shape[1] - 1]):
            chosen = ambiguous[:, column]
            if not chosen.any():
                continue
            part = ozaki.Limbs((shape[0], 1), bits)
            part.limbs = [limb[:, j : j + 1] for limb in carried]
            rounded = bounds.exact_round_up(part, frame[:, column : column + 1],
                                            float(factors[0, column]))  # fmt: skip
            scale[chosen, column] = rounded[chosen, 0]
    return scale


def _round_columns(limbs: ozaki.Limbs, frame: Any, factors: Any, target: str) -> Float:
    """Round the exact sums with a factor per column (the weight's and the bias')."""
    result = np.empty(limbs.shape)
    carried = limbs.normalized()
    for value in np.unique(factors):
        where = np.flatnonzero(factors[0] == value)
        part = ozaki.Limbs((limbs.shape[0], len(where)), limbs.bits)
        part.limbs = [limb[:, where] for limb in carried]
        result[:, where] = ozaki.round_scaled(part, frame[:, where], float(value), target)
    return result
