"""Per-channel correlations as matrix products with a banded matrix.

A depthwise convolution (one filter per channel, ``groups == C == C_out``)
has no channel sum to hand to a matrix product: each output is ``K``
multiply-adds along the length axis,

.. math:: y[n, c, l] = \\sum_{k=0}^{K-1} h[c, k]\\; z[n, c, l + k d].

Done as ``K`` element-wise passes over the data this is bound by memory
traffic. Cut the length axis into tiles of ``T`` outputs instead: tile ``t``
reads the window ``z[t T : t T + T + D]`` (``D = d (K - 1)``, the kernel's
span), and its outputs are that window times a ``(T + D) x T`` band matrix

.. math:: B_c[m, j] = h[c, k] \\text{ if } m = j + k d, \\text{ else } 0,

so one batched matrix product per block does the work, from the cache. It
multiplies ``(T + D) / K`` times more numbers than the definition, the
extra ones by the band's zeros; with finite data those add exact zeros and
the result is the same sum. A non-finite ``z`` would spread (``0 * inf`` is
NaN) to its whole tile, so each block checks its own stretch of ``z`` (in
cache, just before its product) and a block that holds an inf or NaN is
left to the caller's direct sums; a tap that is not finite sends every
block there.

When it is used (depthwise, stride 1, ``K >= 5``, a span of at most 64) is
decided by :mod:`uscale_ref.kernels.plan`, with the measurements behind it.
"""

from __future__ import annotations

from typing import Any

from .._backend import Array, Namespace, device_of
from .blocks import window
from .plan import tile_length
from .products import matmul
from .taps import as_work

__all__ = ["Bands", "band_matrices", "banded_correlate", "bands_for"]


def band_matrices(xp: Namespace, taps: Array, tile: int, dilation: int) -> Array:
    """The ``(C, T + D, T)`` band matrices ``B_c[m, j] = taps[c, k]`` where ``m = j + k d``.

    Built as ``taps @ E`` with 0/1 indicator matrices ``E_k[m, j] = [m = j + k d]``;
    each entry of ``B`` is one tap times one plus zeros, so it is exact.
    """
    channels, kernel_size = taps.shape
    span = dilation * (kernel_size - 1)
    width = tile + span
    device = device_of(taps)
    rows = xp.arange(width, device=device)[:, None]
    cols = xp.arange(tile, device=device)[None, :]
    offsets = xp.arange(kernel_size, device=device)[:, None, None] * dilation
    indicator = xp.astype(rows[None, :, :] - cols[None, :, :] == offsets, taps.dtype)
    band = matmul(xp, taps, xp.reshape(indicator, (kernel_size, width * tile)))
    return xp.reshape(band, (channels, width, tile))


def banded_correlate(
    xp: Namespace, segment: Array, bands: Array, tile: int, span: int, length: int
) -> Array:
    """``y[n, c, l] = sum_m segment[n, c, l - l mod T + m] B_c[m, l mod T]`` for ``l < length``.

    ``segment`` is ``(N, C, S)`` with ``S >= (ceil(length / T) + ceil(span / T)) T``
    (zeros past the data) and ``bands`` comes from :func:`band_matrices`.
    """
    batch, channels = segment.shape[0], segment.shape[1]
    count = -(-length // tile)
    reach = -(-span // tile)  # how many following tiles a window reaches into
    used = segment[..., : (count + reach) * tile]
    tiles = xp.reshape(used, (batch, channels, count + reach, tile))
    parts = [tiles[:, :, :count, :]]
    for r in range(1, reach + 1):
        parts.append(tiles[:, :, r : count + r, : min(tile, span - (r - 1) * tile)])
    windows = xp.concat(parts, axis=-1) if len(parts) > 1 else parts[0]
    product = matmul(xp, windows, bands[None, ...])  # (N, C, count, T)
    outputs = xp.reshape(product, (batch, channels, count * tile))
    if count * tile == length:
        return outputs
    return xp.asarray(outputs[..., :length], copy=True)  # its own array, not a view of the tiles


class Bands:
    """One depthwise correlation's band matrices, applied block by block.

    ``y[n, c, l] = sum_k taps[c, k] z[n, c, first + l + k d]``, with zeros
    standing in for ``z`` outside its range; :meth:`correlate` computes the
    outputs ``[l0, l1)`` of a batch chunk of ``z``. The taps must be finite
    (:func:`bands_for` checks them; dgrad has checked its weight already).

    Why it equals the textbook: within a tile, column ``j`` of the band
    holds tap ``k`` at row ``j + k d`` and zeros elsewhere, so the product
    with the tile's window is the correlation's sum plus products with
    zeros, which add exact zeros when everything is finite.
    """

    def __init__(self, xp: Namespace, taps: Array, dilation: int, first: int) -> None:
        self.xp, self.first = xp, first
        self.span = dilation * (taps.shape[-1] - 1)
        self.tile = tile_length(self.span)
        self.reach = -(-self.span // self.tile)  # how many following tiles a window reaches into
        self.matrices = band_matrices(xp, taps, self.tile, dilation)

    def correlate(self, z: Array, l0: int, l1: int, work_dtype: Any) -> Array | None:
        """Outputs ``[l0, l1)`` for every batch item of ``z``; ``None`` if its data is not finite.

        ``None`` computes nothing: the caller sums that block directly, so
        an inf or NaN reaches only the outputs the definition gives it.
        """
        xp = self.xp
        count = -(-(l1 - l0) // self.tile)
        segment = window(xp, z, self.first + l0, (count + self.reach) * self.tile)
        if not bool(xp.all(xp.isfinite(segment))):
            return None
        segment = as_work(xp, segment, work_dtype)
        return banded_correlate(xp, segment, self.matrices, self.tile, self.span, l1 - l0)


def bands_for(xp: Namespace, taps: Array, dilation: int, first: int) -> Bands | None:
    """:class:`Bands` for ``taps`` (``(C, K)``), or ``None`` when a tap is not finite."""
    if not bool(xp.all(xp.isfinite(taps))):
        return None
    return Bands(xp, taps, dilation, first)
