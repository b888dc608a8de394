"""Kernels built on a fast algorithm: an FFT convolution's errors, bounded by norms.

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
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..tolerance.rule import ALGORITHMS, FFT_UNITS

if TYPE_CHECKING:
    from ..golden.fixture import Fixture

__all__ = ["ALGORITHMS", "FFT_UNITS", "normwise"]


Float = npt.NDArray[np.float64]


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


def normwise(fixture: Fixture, name: str) -> Float:
    """``log2(M) |s| sum_c ||x_c|| ||w_c||`` for every element of result ``name`` (flat, at
    a compact fixture's positions): the size an FFT kernel's error is bounded by, without
    :data:`FFT_UNITS` and the accumulation's unit roundoff. Zero for ``grad_bias``, a plain
    sum."""
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
    values = np.ascontiguousarray(full).reshape(-1) * scale * math.log2(transform_length(fixture))
    result: Float = values if positions is None else values[positions]
    return result
