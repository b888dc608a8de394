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
    x, w, g = (fixture.input(k) for k in ("input", "weight", "grad_output"))
    assert x is not None and w is not None and g is not None
    x, g = (a if a.ndim == 3 else a[None] for a in (x, g))
    groups = int(fixture.kwargs["groups"])
    out_channels, fan_in = w.shape[0], w.shape[1]
    per_group = out_channels // groups
    nx, nw, ng = _row_norms(x), _row_norms(w), _row_norms(g)  # (N, C), (O, C_g), (N, O)
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
