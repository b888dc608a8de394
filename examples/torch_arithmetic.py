"""How PyTorch's CPU convolution adds its kernel taps in float16 and bfloat16, found by probing.

On processors without native bfloat16 arithmetic (AVX2 only, no AVX-512
BF16), PyTorch computes the input gradient of a narrow conv1d as one float32
matrix product per kernel tap, rounds each to the storage format, and adds
the taps' results in that format, rounding after every addition (col2im).
Its running sum over the taps is then kept in the narrow format, not in
float32, and uscale_ref's default verdict rightly fails it; the verdict
for a sum kept in that format (``accumulate="bfloat16"``) passes it.

:func:`taps_summed_in` reproduces that arithmetic bit for bit on a small
problem and says whether this machine's PyTorch does it.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def taps_summed_in(dtype: str) -> str | None:
    """``dtype`` when PyTorch's CPU conv1d backward adds its taps in it (float16, bfloat16).

    None for any other dtype, and where PyTorch's grad_input differs from that
    arithmetic (as where oneDNN accumulates everything in float32).
    """
    if dtype not in ("bfloat16", "float16"):
        return None
    import torch

    narrow = getattr(torch, dtype)
    rng = np.random.default_rng(7)
    batch, channels, length, outputs, taps = 2, 16, 40, 16, 5
    half = taps // 2
    x = torch.tensor(rng.standard_normal((batch, channels, length)), dtype=narrow)
    x.requires_grad_()
    w = torch.tensor(rng.standard_normal((outputs, channels, taps)), dtype=narrow)
    y = torch.nn.functional.conv1d(x, w, padding=half)
    g = torch.tensor(rng.standard_normal(tuple(y.shape)), dtype=narrow)
    (grad_input,) = torch.autograd.grad(y, (x,), g)

    # Tap j's contribution: sum over o of w[o, c, j] g[n, o, l + half - j], in float32.
    padded = torch.nn.functional.pad(g.float(), (half, half))
    products = [
        torch.einsum("oc,nol->ncl", w.float()[:, :, j], padded[:, :, 2 * half - j :][..., :length])
        for j in range(taps)
    ]
    running = products[0].to(narrow)
    for product in products[1:]:
        running = (running.float() + product.to(narrow).float()).to(narrow)
    rounded_once = sum(p.double() for p in products).to(narrow)
    if torch.equal(running, grad_input) and not torch.equal(rounded_once, grad_input):
        return dtype
    return None


if __name__ == "__main__":
    for name in ("bfloat16", "float16"):
        found = taps_summed_in(name)
        print(f"{name}: taps added in {found or 'float32 (or otherwise)'}")
