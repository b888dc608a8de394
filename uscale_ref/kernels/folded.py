"""The batch laid end to end: one wide product per tap instead of one per batch item.

A stride-1 correlation gives output ``l`` of item ``n`` as
``sum_k A_k @ seg[n, :, l + o_k]``, where ``seg`` is the stretch of the
item's (padded) data the block reads and ``o_k`` tap ``k``'s offset in it.
Put the ``N`` segments of ``S`` positions end to end and they make one
matrix of ``N S`` columns, in which column ``n S + l + o_k`` is
``seg[n, :, l + o_k]`` as long as ``l + o_k < S``. That holds for every
output kept (``l < width`` with ``width + max_k o_k <= S``), so column
``n S + l`` of the product with the columns shifted by ``o_k`` holds the
item's own sum; the last ``S - width`` columns of each item mix it with the
next one and are dropped.

Each kept output has the same terms as in the per-item products of the
``per_tap`` path, the taps added in the same order; only the products'
shape changes, ``N`` of ``S`` columns becoming one of ``N S`` (BLAS may
group a channel sum differently for the wider matrix, so the last bits
can differ, as between any two BLAS calls). On the benchmark's dense
``K = 5`` layer that took the forward and dgrad to about 0.9 of their time,
the fold and the unfold (two copies) included (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

from .._backend import Array, Namespace, device_of, is_writeable
from .blocks import window
from .products import sum_over_taps
from .taps import as_work

__all__ = ["correlate", "fold", "unfold"]


def fold(
    xp: Namespace,
    a: Array,
    groups: int,
    first: int,
    length: int,
    work_dtype: Any,
) -> Array:
    """``a[n, g Q + q, first + j]`` for ``j < length`` as a ``(G, Q, N length)`` matrix.

    Zeros where ``first + j`` lies outside ``a`` (the padding); cast to the
    working dtype. Column ``n length + j`` holds item ``n``'s position
    ``first + j``.
    """
    batch, channels = a.shape[0], a.shape[1]
    per_group = channels // groups
    by_group = xp.permute_dims(xp.reshape(a, (batch, groups, per_group, a.shape[-1])), (1, 2, 0, 3))
    segments = window(xp, by_group, first, length)  # (G, Q, N, length), copied unless no padding
    segments = as_work(xp, segments, work_dtype)
    return xp.reshape(segments, (groups, per_group, batch * length))


def unfold(xp: Namespace, products: Array, batch: int, length: int, width: int) -> Array:
    """Columns ``n length + l`` (``l < width``) of ``(G, P, M)`` products as ``(N, G P, width)``.

    ``M`` may stop short of ``N length``: it needs to reach only the last
    item's ``width`` columns. The result is one new array in the usual
    order (items first, C order), written in one pass.
    """
    groups, rows = products.shape[0], products.shape[1]
    head_items = batch - 1
    head = xp.reshape(products[..., : head_items * length], (groups, rows, head_items, length))
    last = head_items * length
    head = xp.permute_dims(head[..., :width], (2, 0, 1, 3))
    tail = products[..., last : last + width]
    if is_writeable(products):  # NumPy would lay a concatenation out like its permuted parts
        result = xp.empty(
            (batch, groups, rows, width), dtype=products.dtype, device=device_of(products)
        )
        result[:head_items, ...] = head
        result[head_items, ...] = tail
    else:
        result = xp.concat([head, tail[None, ...]], axis=0)
    return xp.reshape(result, (batch, groups * rows, width))


def correlate(
    xp: Namespace,
    matrices: list[Array],
    offsets: list[int],
    a: Array,
    groups: int,
    first: int,
    width: int,
    work_dtype: Any,
) -> Array:
    """``sum_k matrices[k] @ a[n, g Q + :, first + l + offsets[k]]`` for ``l < width``.

    ``a`` is ``(N, G Q, length)`` (zeros read outside it), ``matrices[k]``
    is ``(G, P, Q)``; the result is ``(N, G P, width)``. Each item's segment
    is ``width + max(offsets)`` long, folded by :func:`fold`.
    """
    batch, length = a.shape[0], width + max(offsets)
    folded = fold(xp, a, groups, first, length, work_dtype)
    columns = batch * length - max(offsets)
    shifted = [folded[..., o : o + columns] for o in offsets]
    products = sum_over_taps(xp, matrices, shifted, None, broadcast=False)
    return unfold(xp, products, batch, length, width)
