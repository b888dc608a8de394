"""A stand-in for *your* conv1d kernel: plain NumPy, output channels in tiles of 64.

``TILE_BUG = True`` switches on a realistic mistake: the bias is left out of
the second tile of output channels. Shapes with 64 output channels or fewer
(every committed golden case) never reach it.
"""

from __future__ import annotations

import os

import numpy as np

import uscale_ref

TILE = 64
TILE_BUG = os.environ.get("MY_KERNEL_TILE_BUG") == "1"


def my_conv1d(x, w, b=None, **kwargs):
    """Forward: uscale_ref computes each tile here; a real kernel would do its own work."""
    output = []
    for start in range(0, w.shape[0], TILE):
        tile = slice(start, start + TILE)
        bias = None if b is None or (TILE_BUG and start == TILE) else b[tile]
        scales = uscale_ref.conv1d_scales(x.shape, w.shape, **kwargs)
        unscaled = uscale_ref.correlate(x, w, **_geometry(kwargs))[..., tile, :]
        if bias is not None:
            unscaled = unscaled + bias[:, None]
        output.append(unscaled * np.asarray(scales.output, dtype=x.dtype))
    return np.concatenate(output, axis=-2)


def my_conv1d_backward(g, x, w, b=None, **kwargs):
    """Backward: here simply uscale_ref's own."""
    return uscale_ref.conv1d_backward(g, x, w, b, **kwargs)


def _geometry(kwargs):
    return {k: kwargs[k] for k in ("stride", "padding", "dilation", "groups")}
