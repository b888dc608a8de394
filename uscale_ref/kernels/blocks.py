"""The block driver the kernels share: walk batch and length in blocks, join the results.

Every kernel computes one block at a time, ``compute(n0, n1, a, b)`` for
batch items ``[n0, n1)`` and positions ``[a, b)``, as its :class:`Plan`
sizes them; :func:`map_blocks` lays the blocks end to end (forward, dgrad)
and :func:`sum_blocks` adds them up (wgrad). Padding happens here too:
:func:`window` cuts a stretch of an array with zeros wherever it falls
outside, so the padded input is never built whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

from .._backend import Array, Namespace, device_of, is_writeable
from .plan import Plan

__all__ = [
    "join",
    "map_blocks",
    "ranges",
    "sum_blocks",
    "walk",
    "window",
    "windows",
    "zeros_like_shape",
]

Compute = Callable[[int, int, int, int], Array]


def ranges(
    start: int, stop: int, length: int, cuts: Sequence[int] = ()
) -> Iterator[tuple[int, int]]:
    """Consecutive ``[a, b)`` of at most ``length`` covering ``[start, stop)``.

    No range crosses a position in ``cuts``: a kernel whose blocks differ on
    either side of a position (dgrad's edges) gets blocks that are all of
    one kind.
    """
    if not cuts:
        for a in range(start, stop, length):
            yield a, min(stop, a + length)
        return
    edges = sorted({start, stop, *(c for c in cuts if start < c < stop)})
    for lo, hi in itertools.pairwise(edges):
        for a in range(lo, hi, length):
            yield a, min(hi, a + length)


def join(xp: Namespace, blocks: Iterable[Array], axis: int, total: int) -> Array:
    """Blocks laid end to end along ``axis`` (0 or -1), ``total`` long there.

    Each block is copied into one preallocated result as soon as it is made,
    so its memory goes straight back to the allocator for the next block:
    keeping every block until one final ``concat`` measured up to 3x slower
    (the freed blocks, returned to the system together, had to be paged in
    again on the next call). Arrays that cannot be written in place (JAX)
    keep the blocks and concatenate them. A single block that is already the
    whole result is returned as it is.
    """
    result: Array | None = None
    kept: list[Array] = []
    start = 0
    for block in blocks:
        size = block.shape[axis]
        if start == 0 and size == total:
            return block
        if start == 0 and is_writeable(block):
            shape = list(block.shape)
            shape[axis] = total
            result = xp.empty(tuple(shape), dtype=block.dtype, device=device_of(block))
        if result is None:
            kept.append(block)
        elif axis == 0:
            result[start : start + size, ...] = block
        else:
            result[..., start : start + size] = block
        start += size
    return xp.concat(kept, axis=axis) if result is None else result


def walk(
    plan: Plan, batch: int, start: int, stop: int, cuts: Sequence[int] = ()
) -> Iterator[tuple[int, int, int, int]]:
    """Every ``(n0, n1, a, b)``: batch chunks outside, blocks of ``[start, stop)`` inside."""
    for n0, n1 in ranges(0, batch, plan.batch_chunk):
        for a, b in ranges(start, stop, plan.block_length, cuts):
            yield n0, n1, a, b


def map_blocks(
    xp: Namespace,
    plan: Plan,
    compute: Compute,
    batch: int,
    start: int,
    stop: int,
    cuts: Sequence[int] = (),
) -> Array:
    """``compute`` on every batch chunk and block of ``[start, stop)``, joined.

    The result has ``batch`` items along axis 0 and ``stop - start``
    positions along the last axis.
    """

    if not cuts and batch <= plan.batch_chunk and stop - start <= plan.block_length:
        return compute(0, batch, start, stop)  # one block: the common small case, no joins

    def chunk(n0: int, n1: int) -> Array:
        blocks = (compute(n0, n1, a, b) for a, b in ranges(start, stop, plan.block_length, cuts))
        return join(xp, blocks, -1, stop - start)

    chunks = (chunk(n0, n1) for n0, n1 in ranges(0, batch, plan.batch_chunk))
    return join(xp, chunks, 0, batch)


def sum_blocks(xp: Namespace, plan: Plan, compute: Compute, batch: int, stop: int) -> Array:
    """The sum of ``compute`` over every batch chunk and block of ``[0, stop)``."""
    if batch <= plan.batch_chunk and stop <= plan.block_length:
        return compute(0, batch, 0, stop)
    total: Array | None = None
    for n0, n1 in ranges(0, batch, plan.batch_chunk):
        for a, b in ranges(0, stop, plan.block_length):
            block = compute(n0, n1, a, b)
            total = block if total is None else total + block
    assert total is not None
    return total


def zeros_like_shape(xp: Namespace, like: Array, shape: tuple[int, ...]) -> Array:
    """Zeros of ``shape`` in ``like``'s dtype and on its device."""
    return xp.zeros(shape, dtype=like.dtype, device=device_of(like))


def windows(
    xp: Namespace,
    a: Array,
    starts: Sequence[int],
    count: int,
    step: int = 1,
    prepare: Callable[[Array], Array] = lambda part: part,
) -> list[Array]:
    """:func:`window` ``(a, start, count, step)`` for each start, each passed through ``prepare``.

    When the starts lie close together (the stretch they cover is at most
    twice what they read) that stretch is cut and prepared once and the
    results are views of it; otherwise each is cut on its own, so the cost
    follows ``len(starts) * count``, never the distance between them.
    """
    lo = min(starts)
    stretch = max(starts) - lo + (count - 1) * step + 1
    if stretch <= 2 * len(starts) * count:
        segment = prepare(window(xp, a, lo, stretch))
        return [segment[..., s - lo : s - lo + (count - 1) * step + 1 : step] for s in starts]
    return [prepare(window(xp, a, s, count, step)) for s in starts]


def window(xp: Namespace, a: Array, start: int, count: int, step: int = 1) -> Array:
    """``a[..., start + j * step]`` for ``j < count``, zero where the index is outside ``a``.

    This is how padding happens: each block takes its own stretch of the
    padded array. The zeros are real zeros, multiplied like any value (as
    PyTorch multiplies its padding). Costs ``count`` positions whatever
    ``start`` and ``step`` are.
    """
    length = a.shape[-1]
    lead = tuple(a.shape[:-1])
    # j in [first, last) reads inside a: 0 <= start + j * step < length.
    first = min(count, max(0, -(start // step)))  # ceil(-start / step)
    last = max(first, min(count, -(-(length - start) // step)))
    if first == last:
        return zeros_like_shape(xp, a, (*lead, count))
    lo = start + first * step
    inner = a[..., lo : lo + (last - first - 1) * step + 1 : step]
    if first == 0 and last == count:
        return inner
    parts = [inner]
    if first:
        parts.insert(0, zeros_like_shape(xp, a, (*lead, first)))
    if count - last:
        parts.append(zeros_like_shape(xp, a, (*lead, count - last)))
    return xp.concat(parts, axis=-1)
