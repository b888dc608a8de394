"""A Winograd (minimal filtering) conv1d, F(m, r), written independently of uscale_ref.

Winograd's F(m, r) gives ``m`` outputs of an ``r``-tap correlation from a tile of
``a = m + r - 1`` inputs with ``a`` multiplications instead of ``m r``::

    y = A^T [(G w) * (B^T d)]

The matrices come from the Toom-Cook construction at ``a - 1`` points and the point
at infinity: ``G`` evaluates the weight polynomial there, ``A^T`` is the transpose of
the evaluation of a degree ``m - 1`` polynomial, and ``B^T`` the transpose of the
interpolation (the inverse of the points' Vandermonde matrix). They are computed here
in exact rationals, then rounded once to the kernel's dtype, as real kernels store them.
Every step after that (the transforms, the products and their sum over channels, the
inverse transform) runs in that dtype: the errors are those of a float32 Winograd
kernel, larger than a direct kernel's where an element's terms cancel.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

import uscale_ref

#: The interpolation points, in the usual order (small magnitudes first).
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), -Fraction(1, 2), 3, -3)


def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """The inverse of a square matrix of rationals (Gauss-Jordan, exact)."""
    size = len(matrix)
    rows = [row[:] + [Fraction(int(i == j)) for j in range(size)] for i, row in enumerate(matrix)]
    for column in range(size):
        pivot = next(i for i in range(column, size) if rows[i][column] != 0)
        rows[column], rows[pivot] = rows[pivot], rows[column]
        lead = rows[column][column]
        rows[column] = [value / lead for value in rows[column]]
        for i in range(size):
            if i != column and rows[i][column] != 0:
                factor = rows[i][column]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[column], strict=True)]
    return [row[size:] for row in rows]


def matrices(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A^T`` (m, a), ``G`` (a, r) and ``B^T`` (a, a) of F(m, r), in float64."""
    a = m + r - 1
    if a - 1 > len(POINTS):
        raise ValueError(f"F({m}, {r}) needs {a - 1} points; {len(POINTS)} are listed")
    points = [Fraction(p) for p in POINTS[: a - 1]]

    def evaluation(degree: int) -> list[list[Fraction]]:
        """Rows: a polynomial of ``degree`` coefficients at each point, then at infinity."""
        finite = [[p**i for i in range(degree)] for p in points]
        return [*finite, [Fraction(int(i == degree - 1)) for i in range(degree)]]

    interpolation = _inverse(evaluation(a))  # (a, a): values at the points -> coefficients
    a_t = np.array(evaluation(m), dtype=float).T
    g = np.array(evaluation(r), dtype=float)
    b_t = np.array(interpolation, dtype=float).T
    return a_t, g, b_t


def correlate(x: np.ndarray, w: np.ndarray, m: int) -> np.ndarray:
    """``y[n, o, l] = sum_{c, k} x[n, c, l + k] w[o, c, k]`` (valid) by F(m, K) tiles, every
    step in ``x``'s dtype."""
    dtype = x.dtype
    batch, channels, length = x.shape
    taps = w.shape[-1]
    a_t, g, b_t = (matrix.astype(dtype) for matrix in matrices(m, taps))
    out_length = length - taps + 1
    tiles = -(-out_length // m)
    grown = np.zeros((batch, channels, tiles * m + taps - 1), dtype=dtype)
    grown[..., :length] = x
    windows = grown[..., np.arange(tiles)[:, None] * m + np.arange(m + taps - 1)]
    transformed = np.einsum("ja,ncta->nctj", b_t, windows).astype(dtype)
    filters = np.einsum("jk,ock->ocj", g, w.astype(dtype)).astype(dtype)
    products = np.einsum("nctj,ocj->notj", transformed, filters).astype(dtype)
    y = np.einsum("ij,notj->noti", a_t, products).astype(dtype)
    return y.reshape(batch, -1, tiles * m)[..., :out_length]


def _geometry(x, w, kwargs):
    shape = {k: kwargs[k] for k in ("stride", "padding", "dilation", "groups")}
    geometry = uscale_ref.conv1d_geometry(x.shape, w.shape, **shape)
    if (geometry.stride, geometry.dilation, geometry.groups) != (1, 1, 1):
        raise ValueError("this Winograd kernel takes stride 1, dilation 1 and one group")
    return geometry


def kernel(m: int):
    """A ``(forward, backward)`` pair computing output and grad_input by F(m, K) in the
    inputs' dtype (grad_weight and grad_bias as uscale_ref computes them)."""

    def forward(x, w, b, **kwargs):
        geometry = _geometry(x, w, kwargs)
        batch = x if x.ndim == 3 else x[None]
        padded = np.pad(batch, ((0, 0), (0, 0), (geometry.pad_left, geometry.pad_right)))
        y = correlate(padded, w, m)
        if b is not None:
            y = y + b[:, None].astype(y.dtype)
        scale = uscale_ref.conv1d_scales(x.shape, w.shape, **kwargs).output
        y = (y * np.asarray(scale, dtype=y.dtype)).astype(x.dtype)
        return y if x.ndim == 3 else y[0]

    def backward(grad, x, w, b, **kwargs):
        geometry = _geometry(x, w, kwargs)
        batch = grad if grad.ndim == 3 else grad[None]
        taps = w.shape[-1]
        # dgrad: grad_output padded by K - 1 less the forward's padding, correlated with
        # the weight flipped and transposed.
        ends = (taps - 1 - geometry.pad_left, taps - 1 - geometry.pad_right)
        padded = np.pad(batch, ((0, 0), (0, 0), ends))
        flipped = np.conj(np.ascontiguousarray(np.swapaxes(w[..., ::-1], 0, 1)))
        gi = correlate(padded, flipped, m)
        scales = uscale_ref.conv1d_scales(x.shape, w.shape, **kwargs)
        gi = (gi * np.asarray(scales.grad_input, dtype=gi.dtype)).astype(x.dtype)
        exact = uscale_ref.conv1d_backward(grad, x, w, b, **kwargs)
        return exact._replace(grad_input=gi if grad.ndim == 3 else gi[0])

    return forward, backward
