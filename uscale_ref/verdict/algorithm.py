"""Kernels built on a fast algorithm: an FFT's or Winograd's errors, bounded by norms.

A direct kernel forms each element's products and adds them: its error is
bounded element by element by the terms' magnitudes (the error scale). An
FFT convolution transforms whole rows, multiplies the transforms and
transforms back: every output element of a row carries rounding errors of
every input element of it, and the error is bounded by the rows' 2-norms::

    |y_hat[i] - y[i]| <= FFT_UNITS * log2(M) * u_acc * |s| * sum_c ||x_c||_2 ||w_c||_2

over the channels ``c`` the element sums, ``M`` the transform's length (a
power of two at least the padded row and the kernel's span). An element much
smaller than its row's norms (one where the terms cancel) may then err by far
more than a direct kernel may, and a correct FFT kernel fails the direct
bound there. Declaring ``algorithm="fft"`` adds this normwise term to the
bound (and its size, without the constant, to the yardstick).

A Winograd kernel (minimal filtering, F(m, r)) transforms short tiles
instead: each output of a tile carries rounding errors of every input of the
tile's window, scaled by the transforms' entries, so its error is bounded by
the norms of that window rather than of the whole row::

    |y_hat[i] - y[i]| <= WINOGRAD_UNITS * u_acc * |s| * sum_c ||x_c[window(i)]||_2 ||w_c||_2

``window(i)`` the inputs of any tile of up to :data:`WINOGRAD_TILE` outputs
that holds ``i`` (so whatever the kernel's tiling): the element's own inputs
widened by ``WINOGRAD_TILE - 1`` strides either side. grad_input's windows
run along grad_output alike; grad_weight's sums run over whole rows, so its
Winograd term is the rows' norms (without the FFT's ``log2(M)``).
``algorithm="winograd"`` adds this term.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..tolerance.rule import ALGORITHMS, FFT_UNITS, WINOGRAD_TILE, WINOGRAD_UNITS

if TYPE_CHECKING:
    from ..golden.fixture import Fixture

__all__ = ["ALGORITHMS", "FFT_UNITS", "WINOGRAD_TILE", "WINOGRAD_UNITS", "normwise"]


Float = npt.NDArray[np.float64]
Index = npt.NDArray[np.int64]


def _row_norms(a: npt.NDArray[np.generic]) -> Float:
    """The 2-norm of each row (last axis) of ``a``, in float64 (``|re|, |im|`` together)."""
    wide = a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)
    return np.asarray(np.sqrt(np.sum(np.abs(wide) ** 2, axis=-1)), dtype=np.float64)


#: Rows drawn at once for a compact fixture's norms (its inputs are never held whole).
_ROWS_AT_ONCE = 2**20


def _norms(fixture: Fixture, name: str) -> Float:
    """The rows' norms of ``input`` or ``grad_output``, shaped ``(N, channels)`` (N = 1 when
    unbatched). A compact fixture's rows are drawn from their seeds a block at a time."""
    shape = fixture.result_shape(name)
    batched = (1, *shape) if len(shape) == 2 else shape
    if not fixture.compact:
        array = fixture.input(name)
        assert array is not None
        return _row_norms(array.reshape(batched))
    from ..golden.inputs import SeededSource

    source = SeededSource(fixture.spec)
    rows, length = math.prod(batched[:-1]), batched[-1]
    per_block = max(1, _ROWS_AT_ONCE // length)
    norms = np.empty(rows)
    for start in range(0, rows, per_block):
        stop = min(rows, start + per_block)
        flat = np.arange(start * length, stop * length, dtype=np.int64)
        norms[start:stop] = _row_norms(source.at(name, flat).reshape(stop - start, length))
    return norms.reshape(batched[:-1])


def transform_length(fixture: Fixture) -> int:
    """The shortest power-of-two transform that holds a padded row and the kernel's span."""
    resolved = fixture.metadata["resolved"]
    length = fixture.result_shape("input")[-1] + resolved["pad_left"] + resolved["pad_right"]
    kernel = fixture.result_shape("weight")[-1]
    dilation = fixture.kwargs["dilation"]
    dilation = dilation[0] if isinstance(dilation, tuple) else dilation
    span = length + (kernel - 1) * dilation
    return 1 << max(1, math.ceil(math.log2(max(2, span))))


def normwise(fixture: Fixture, name: str, algorithm: str = "fft") -> Float:
    """The size ``algorithm``'s error is bounded by, for every element of result ``name``
    (flat, at a compact fixture's positions), without the algorithm's constant and the
    accumulation's unit roundoff: ``log2(M) |s| sum_c ||x_c|| ||w_c||`` for ``"fft"``,
    ``|s| sum_c ||x_c[window]|| ||w_c||`` for ``"winograd"`` (:func:`windowed`). Zero for
    ``grad_bias``, a plain sum."""
    if algorithm == "winograd" and name in ("output", "grad_input"):
        return windowed(fixture, name)
    shape = fixture.result_shape(name)
    positions = fixture.positions(name)
    if name == "grad_bias":
        size = int(np.prod(shape, dtype=np.int64)) if positions is None else positions.size
        return np.zeros(size)
    w = fixture.input("weight")
    assert w is not None
    groups = int(fixture.kwargs["groups"])
    out_channels, fan_in = w.shape[0], w.shape[1]
    per_group = out_channels // groups
    nx, nw, ng = _norms(fixture, "input"), _row_norms(w), _norms(fixture, "grad_output")
    # Each output channel's group reads input channels group * C_g + i.
    channel = (np.arange(out_channels)[:, None] // per_group) * fan_in + np.arange(fan_in)
    if name == "output":  # (N, O): sum_i ||x[n, channel[o, i]]|| ||w[o, i]||
        rows = np.einsum("noi,oi->no", nx[:, channel], nw)
        full = np.broadcast_to(rows[..., None], (*rows.shape, shape[-1]))
    elif name == "grad_input":  # (N, C): sum over the group's outputs of ||g[n, o]|| ||w[o, i]||
        rows = np.zeros(nx.shape)
        for o in range(out_channels):
            rows[:, channel[o]] += ng[:, o, None] * nw[o][None, :]
        full = np.broadcast_to(rows[..., None], (*rows.shape, shape[-1]))
    else:  # grad_weight (O, C_g, K): sum_n ||g[n, o]|| ||x[n, channel[o, i]]||
        rows = np.einsum("no,noi->oi", ng, nx[:, channel])
        full = np.broadcast_to(rows[..., None], (*rows.shape, shape[-1]))
    scale = abs(float(fixture.metadata["scales"][name]))
    if algorithm == "fft":
        scale *= math.log2(transform_length(fixture))
    values = np.ascontiguousarray(full).reshape(-1) * scale
    result: Float = values if positions is None else values[positions]
    return result


def _window(fixture: Fixture, name: str, at: npt.NDArray[np.int64]) -> tuple[Index, Index]:
    """The window ``[lo, hi)`` of the rows result ``name``'s element at position ``at`` reads
    (input's for the output, grad_output's for grad_input), widened by a tile's reach."""
    geo = fixture.spec.geometry
    reach = WINOGRAD_TILE - 1
    span = (geo.kernel_size - 1) * geo.dilation
    if name == "output":
        lo = (at - reach) * geo.stride - geo.pad_left
        hi = (at + reach) * geo.stride - geo.pad_left + span + 1
        length = geo.in_length
    else:  # the q with q s + k d - pad = at for some tap k
        lo = -((span - at - geo.pad_left) // geo.stride) - reach  # ceil((at + pad - span) / s)
        hi = (at + geo.pad_left) // geo.stride + reach + 1
        length = geo.out_length
    return np.clip(lo, 0, length), np.clip(hi, 0, length)


#: Positions whose windows are summed at once (times the channels they read).
_GATHERED = 2**22


def windowed(fixture: Fixture, name: str) -> Float:
    """``|s| sum_c ||x_c[window]|| ||w_c||`` for every element of ``output`` or
    ``grad_input`` (flat, at a compact fixture's positions): the norms of the inputs of any
    tile of up to :data:`WINOGRAD_TILE` outputs holding the element, times the weight rows'
    norms, over the channels the element sums.

    Each source row's squares are summed cumulatively once; a window's norm is then a
    difference of two of those sums. A compact fixture's rows are drawn from their seeds a
    block at a time, and only its positions' windows are kept.
    """
    geo = fixture.spec.geometry
    shape = fixture.result_shape(name)
    batched = (1, *shape) if len(shape) == 2 else shape
    items, rows, length = batched
    positions = fixture.positions(name)
    w = fixture.input("weight")
    assert w is not None
    nw = _row_norms(w)  # (O, C_g)
    per_group = geo.out_channels // geo.groups
    if name == "output":  # element (n, o, l) reads input channels g C_g + i, weighted nw[o, i]
        weights, width = nw, geo.in_channels // geo.groups
    else:  # element (n, c, l) reads grad_output channels g O_g + j, weighted nw[g O_g + j, i]
        width = per_group
        weights = nw.reshape(geo.groups, per_group, -1).transpose(0, 2, 1).reshape(-1, width)
    rows_per = rows // geo.groups  # the result's rows of one group
    source_name = "input" if name == "output" else "grad_output"
    # Each needed (item, position) pair's window norms over all source channels: every pair
    # for a whole fixture, in order; a compact fixture's own.
    if positions is None:
        pairs = np.arange(items * length, dtype=np.int64)
    else:
        n, rest = np.divmod(positions, rows * length)
        row, at = np.divmod(rest, length)
        pairs, pair_of = np.unique(n * length + at, return_inverse=True)
    pair_n, pair_at = np.divmod(pairs, length)
    pair_lo, pair_hi = _window(fixture, name, pair_at)
    norms = _window_norms(fixture, source_name, pair_n, pair_lo, pair_hi)  # (pairs, channels)
    if positions is None:  # every element: a product per group of pairs by weights
        whole = np.empty(batched)
        for g in range(geo.groups):
            block = norms[:, g * width : (g + 1) * width]
            mine = weights[g * rows_per : (g + 1) * rows_per]
            part = (block @ mine.T).reshape(items, length, rows_per)
            whole[:, g * rows_per : (g + 1) * rows_per] = part.transpose(0, 2, 1)
        values = whole.reshape(-1)
    else:
        group = row // rows_per
        values = np.empty(positions.size)
        per = max(1, _GATHERED // max(1, width))
        lanes = np.arange(width)
        for start in range(0, positions.size, per):
            stop = min(positions.size, start + per)
            channels = group[start:stop, None] * width + lanes
            gathered = norms[pair_of[start:stop, None], channels]
            values[start:stop] = np.einsum("pc,pc->p", gathered, weights[row[start:stop]])
    scale = abs(float(fixture.metadata["scales"][name]))
    result: Float = values * scale
    return result


def _window_norms(
    fixture: Fixture, name: str, items: Index, lo: Index, hi: Index
) -> npt.NDArray[np.float64]:
    """``||name[item, c, lo:hi]||`` for each ``(item, lo, hi)`` and every channel ``c``."""
    shape = fixture.result_shape(name)
    batched = (1, *shape) if len(shape) == 2 else shape
    _, channels, length = batched
    out = np.empty((items.size, channels))
    array = None if fixture.compact else fixture.input(name)
    source = None
    if array is None:
        from ..golden.inputs import SeededSource

        source = SeededSource(fixture.spec)
    per_block = max(1, _ROWS_AT_ONCE // length)
    for item in np.unique(items):
        mine = np.flatnonzero(items == item)
        for first in range(0, channels, per_block):
            last = min(channels, first + per_block)
            if array is not None:
                rows = array.reshape(batched)[item, first:last]
            else:
                assert source is not None
                start = (item * channels + first) * length
                flat = np.arange(start, start + (last - first) * length, dtype=np.int64)
                rows = source.at(name, flat).reshape(last - first, length)
            wide = rows.astype(np.complex128 if np.iscomplexobj(rows) else np.float64)
            sums = np.zeros((last - first, length + 1))
            np.cumsum(np.abs(wide) ** 2, axis=-1, out=sums[:, 1:])
            inside = sums[:, hi[mine]] - sums[:, lo[mine]]
            out[mine, first:last] = np.sqrt(np.maximum(inside, 0)).T
    return out
