"""The unscaled primitives: forward correlation, dgrad and wgrad.

These are the three sums a 1-D convolution layer is made of. Channel indices
are split by group: input channel ``c = g C_g + i`` and output channel
``o = g O_g + j`` with ``C_g = C / G`` and ``O_g = O / G``; ``x_pad`` is the
input with :math:`p_l` zeros on the left and :math:`p_r` on the right.

forward
    .. math:: y[n, o, l] = \\sum_{i, k} w[o, i, k]\\; x_\\text{pad}[n, g C_g + i,\\; l s + k d]

dgrad (``grad_input``)
    .. math:: \\frac{\\partial\\mathcal L}{\\partial x}[n, c, t]
              = \\sum_{j, k, l \\,:\\, l s + k d = t + p_l}
                \\overline{w[g O_g + j, i, k]}\\; \\delta[n, g O_g + j, l]

    a stride-1 correlation of the zero-inserted, padded output gradient with
    the flipped, conjugated, group-transposed kernel; computed in polyphase
    form, which skips the multiplications by the inserted zeros.

wgrad (``grad_weight``)
    .. math:: \\frac{\\partial\\mathcal L}{\\partial w}[o, i, k]
              = \\sum_{n, l} \\delta[n, o, l]\\;
                \\overline{x_\\text{pad}[n, g C_g + i,\\; l s + k d]}

The conjugates give PyTorch autograd's convention for complex arrays (the
conjugate Wirtinger derivative); for real arrays they do nothing.

All three walk the length axis in blocks sized by the workspace setting
(:mod:`uscale_ref.config`) and, within a block, loop over the ``K`` kernel
taps with one batched matrix product per tap over the channels of a group
(broadcast products when a group contracts fewer than 4 channels; strided
taps, and in the forward and dgrad unit-stride taps whose channels times
taps reach 1024, stacked into one matrix per block). Padding is cut block
by block: the padded input is never built whole. The public functions
accept the same arguments as :func:`uscale_ref.conv1d`; the ``*_blocks``
functions are the arithmetic itself, on batched arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from . import banded
from ._backend import (
    Array,
    Namespace,
    check_arrays,
    compute_dtype,
    conj_if_complex,
    device_of,
    from_work,
    is_writeable,
    to_work,
)
from .config import get_workspace_bytes
from .geometry import Conv1dGeometry, conv1d_geometry

__all__ = [
    "correlate",
    "correlate_input_grad",
    "correlate_weight_grad",
    "forward_blocks",
    "input_grad_blocks",
    "weight_grad_blocks",
]

# Blocks of the element-wise paths stay about this small so that the K passes
# over a block hit the cache instead of main memory.
_CACHE_BLOCK_BYTES = 4 * 2**20
# Contractions over fewer channels than this are done as broadcast products:
# a batch of tiny matrix products costs more in call overhead than it saves.
_SMALL_CONTRACTION = 4
# Stride-1 taps are stacked into one matrix ("im2col") when the stacked
# contraction (channels times taps) reaches this: one product with a long
# contraction runs near the BLAS's best rate, K products with a short one do
# not, and from here that gain outweighs the copy.
_WIDE_CONTRACTION = 1024
# Stacked blocks are cut to the cache but kept at least this many positions
# wide: narrower products lose more in BLAS speed than the cache saves.
_MIN_COLUMN_WIDTH = 512


def _blocks(start: int, stop: int, length: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``[a, b)`` ranges of at most ``length`` covering ``[start, stop)``."""
    for a in range(start, stop, length):
        yield a, min(stop, a + length)


def _block_length(
    total: int, bytes_per_position: int, elementwise: bool, stacked: bool = False
) -> int:
    """Positions per block: as many as the workspace holds.

    The element-wise and stacked paths take at most a cache block's worth;
    stacked blocks stay at least ``_MIN_COLUMN_WIDTH`` wide while the
    workspace allows.
    """
    budget = get_workspace_bytes()
    most = max(1, min(total, budget // max(1, bytes_per_position)))
    if not (elementwise or stacked):
        return most
    cached = max(1, min(total, _CACHE_BLOCK_BYTES // max(1, bytes_per_position)))
    if stacked:
        cached = max(cached, min(total, _MIN_COLUMN_WIDTH))
    return min(most, cached)


def _batch_chunks(batch: int, bytes_per_item: int) -> list[tuple[int, int]]:
    """Batch ranges for the cache-blocked paths: as many items as fit a cache block.

    The element-wise and band-matrix paths work on blocks small enough to stay
    in the cache; cutting the batch first keeps their rows long (whole lengths
    where they fit) and lets each block reuse the memory of the one before.
    """
    budget = min(get_workspace_bytes(), _CACHE_BLOCK_BYTES)
    return list(_blocks(0, batch, max(1, budget // max(1, bytes_per_item))))


def _join(xp: Namespace, blocks: Iterable[Array], axis: int, total: int) -> Array:
    """Blocks laid end to end along ``axis`` (0 or -1), ``total`` long there.

    Each block is copied into one preallocated result as soon as it is made,
    so its memory goes straight back to the allocator for the next block:
    keeping every block until one final ``concat`` measured up to 3x slower
    here (the freed blocks, returned to the system together, had to be paged
    in again on the next call). Libraries whose arrays cannot be written in
    place (JAX) keep the blocks and concatenate them. A single block that is
    already the whole result is returned as it is.
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


def _segment(xp: Namespace, a: Array, start: int, stop: int) -> Array:
    """``a[..., start:stop]`` with zeros wherever the index falls outside ``a``.

    This is how padding happens: the padded input is never built as a whole,
    each block takes its slice of it.
    """
    lead = tuple(a.shape[:-1])
    inner_start, inner_stop = max(start, 0), min(stop, a.shape[-1])
    if inner_stop <= inner_start:
        return xp.zeros((*lead, stop - start), dtype=a.dtype, device=device_of(a))
    left, right = inner_start - start, stop - inner_stop
    inner = a[..., inner_start:inner_stop]
    if left == 0 and right == 0:
        return inner
    parts = [inner]
    if left:
        parts.insert(0, xp.zeros((*lead, left), dtype=a.dtype, device=device_of(a)))
    if right:
        parts.append(xp.zeros((*lead, right), dtype=a.dtype, device=device_of(a)))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=-1)


def _contract(xp: Namespace, matrices: Array, columns: Array) -> Array:
    """``matrices @ columns`` for ``(G, P, Q)`` and ``(N, G, Q, B)``, giving ``(N, G, P, B)``."""
    inner = matrices.shape[-1]
    if inner >= _SMALL_CONTRACTION:
        return xp.matmul(matrices, columns)
    total = matrices[None, :, :, 0:1] * columns[:, :, None, 0, :]
    for q in range(1, inner):
        total += matrices[None, :, :, q : q + 1] * columns[:, :, None, q, :]
    return total


def _use_columns(contraction: int, strided: bool) -> bool:
    """Whether to stack strided taps into one matrix per block ("im2col").

    A strided view is copied for a matrix product anyway, and one product
    over all K taps then replaces K thinner ones. (Unit-stride taps: see
    :func:`_stack_wide`.)
    """
    return strided and contraction >= _SMALL_CONTRACTION


def _stack_wide(contraction: int, kernel_size: int, stride: int) -> bool:
    """Whether to stack unit-stride taps: only when ``contraction * K`` is wide.

    Otherwise they stay views, one product per tap: for short stacked
    contractions (``C K`` = 192 to 768 on the benchmark) that measured as
    fast as stacking, without the copies. At ``C K`` = 1152 and 3968 the
    stacked forward and dgrad took 0.92 to 0.99 times as long on a quiet
    host and about 0.8 to 0.9 on a busy one (docs/performance.md).
    """
    return (
        stride == 1
        and contraction >= _SMALL_CONTRACTION
        and contraction * kernel_size >= _WIDE_CONTRACTION
    )


def _stack_taps(xp: Namespace, taps: list[Array]) -> Array:
    """The ``(N, G, Q, B)`` taps as one ``(N, G, Q T, B)`` matrix (``q`` major, ``t`` minor)."""
    batch, groups, inner, width = taps[0].shape
    return xp.reshape(xp.stack(taps, axis=3), (batch, groups, inner * len(taps), width))


def _sum_of_products(
    xp: Namespace, matrices: list[Array], columns: list[Array], stacked: Array | None
) -> Array:
    """``sum_t matrices[t] @ columns[t]``; one product of stacked matrices when given.

    ``matrices[t]`` is ``(G, P, Q)``, ``columns[t]`` is ``(N, G, Q, B)`` and
    ``stacked`` is ``(G, P, Q T)`` (matrix index ``q`` major, ``t`` minor).
    """
    if stacked is not None:
        return xp.matmul(stacked, _stack_taps(xp, columns))
    total = _contract(xp, matrices[0], columns[0])
    for matrix, column in zip(matrices[1:], columns[1:], strict=True):
        total += _contract(xp, matrix, column)
    return total


def _input_taps(
    xp: Namespace,
    x: Array,
    geometry: Conv1dGeometry,
    first_output: int,
    width: int,
    work_dtype: Any,
    conjugate: bool = False,
) -> list[Array]:
    """Views ``x_pad[n, g C_g + i, l s + k d]`` of one block, an ``(N, G, C_g, B)`` per tap.

    The padded block is cut from ``x`` (zeros beyond its ends), cast to the
    working dtype and, if asked, conjugated once; the taps are views of it.
    """
    stride, dilation = geometry.stride, geometry.dilation
    span = dilation * (geometry.kernel_size - 1)
    first = first_output * stride - geometry.pad_left  # in unpadded input coordinates
    segment = _segment(xp, x, first, first + (width - 1) * stride + span + 1)
    if segment.dtype != work_dtype:
        segment = xp.astype(segment, work_dtype)
    if conjugate:
        segment = conj_if_complex(xp, segment)
    segment = xp.reshape(
        segment, (geometry.batch_size, geometry.groups, geometry.fan_in, segment.shape[-1])
    )
    return [
        segment[..., k * dilation : k * dilation + (width - 1) * stride + 1 : stride]
        for k in range(geometry.kernel_size)
    ]


def _banded_blocks(
    xp: Namespace,
    z: Array,
    taps: Array,
    first: int,
    length: int,
    dilation: int,
    work_dtype: Any,
) -> Array | None:
    """``y[n, c, l] = sum_k taps[c, k] z[n, c, first + l + k d]`` by band products.

    Zeros stand in for ``z`` outside its range. Returns ``None``, computing
    nothing, unless ``z`` and ``taps`` are all finite: the band's zeros
    would turn an inf or NaN into NaNs across its tile (see
    :mod:`uscale_ref.banded`), so the caller takes the direct path.
    """
    if not (bool(xp.all(xp.isfinite(taps))) and bool(xp.all(xp.isfinite(z)))):
        return None
    batch, channels = z.shape[0], z.shape[1]
    span = dilation * (taps.shape[-1] - 1)
    tile = banded.tile_length(span)
    reach = -(-span // tile)
    bands = banded.band_matrices(xp, taps, tile, dilation)
    # Per output position: a window ((T + D) / T <= 2 positions), the product and the result.
    per_position = _itemsize(xp, work_dtype) * batch * channels * 4
    length_per_block = _block_length(length, per_position, False)
    if length_per_block < length:  # whole tiles per block
        length_per_block = max(tile, length_per_block // tile * tile)

    def blocks() -> Iterator[Array]:
        for l0, l1 in _blocks(0, length, length_per_block):
            count = -(-(l1 - l0) // tile)
            segment = _segment(xp, z, first + l0, first + l0 + (count + reach) * tile)
            if segment.dtype != work_dtype:
                segment = xp.astype(segment, work_dtype)
            yield banded.banded_correlate(xp, segment, bands, tile, span, l1 - l0)

    return _join(xp, blocks(), -1, length)


def forward_blocks(
    xp: Namespace,
    x: Array,
    weight: Array,
    geometry: Conv1dGeometry,
    *,
    bias: Array | None = None,
    scale: float = 1.0,
) -> Array:
    """``scale * (bias[o] + sum_{i,k} w[o,i,k] x_pad[n, g C_g + i, l s + k d])``.

    ``x`` is batched ``(N, C, L)``; ``weight`` and ``bias`` are already in
    the working dtype, ``x`` is cast block by block. Output blocks of length
    ``B`` read the padded input ``x_pad[l0 s : (l1 - 1) s + d (K - 1) + 1]``.
    """
    batch, groups, stride = geometry.batch_size, geometry.groups, geometry.stride
    out_channels, fan_in, kernel_size = weight.shape
    out_per_group = out_channels // groups
    work_dtype = compute_dtype(xp, x.dtype)
    itemsize = _itemsize(xp, work_dtype)
    wide = _stack_wide(fan_in, kernel_size, stride)
    cached = fan_in < _SMALL_CONTRACTION or banded.applies(geometry) or wide
    if cached and batch > 1:
        columns = kernel_size if wide else 1
        per_item = (
            itemsize
            * geometry.out_length
            * (geometry.in_channels * (1 + columns) + 2 * out_channels)
        )
        chunks = _batch_chunks(batch, per_item)
        if len(chunks) > 1:
            parts = (
                forward_blocks(
                    xp,
                    x[n0:n1, ...],
                    weight,
                    replace(geometry, batch_size=n1 - n0),
                    bias=bias,
                    scale=scale,
                )
                for n0, n1 in chunks
            )
            return _join(xp, parts, 0, batch)
    weight_g = xp.reshape(weight, (groups, out_per_group, fan_in, kernel_size))
    taps_w = [weight_g[..., k] for k in range(kernel_size)]  # (G, O_g, C_g) each
    stacked = None
    if _use_columns(fan_in, stride > 1) or wide:
        stacked = xp.reshape(weight_g, (groups, out_per_group, fan_in * kernel_size))
    bias_g = None if bias is None else xp.reshape(bias, (groups, out_per_group, 1))

    if banded.applies(geometry):
        result = _banded_blocks(
            xp,
            x,
            weight[:, 0, :],
            -geometry.pad_left,
            geometry.out_length,
            geometry.dilation,
            work_dtype,
        )
        if result is not None:
            if bias is not None:
                result += xp.reshape(bias, (out_channels, 1))
            if scale != 1.0:
                result *= scale
            return result

    columns = kernel_size if stacked is not None else 1
    per_position = itemsize * batch * (geometry.in_channels * (stride + columns) + 2 * out_channels)
    length = _block_length(
        geometry.out_length, per_position, fan_in < _SMALL_CONTRACTION, stacked=wide
    )

    def blocks() -> Iterator[Array]:
        for l0, l1 in _blocks(0, geometry.out_length, length):
            width = l1 - l0
            taps = _input_taps(xp, x, geometry, l0, width, work_dtype)
            block = _sum_of_products(xp, taps_w, taps, stacked)
            if bias_g is not None:
                block += bias_g
            if scale != 1.0:
                block *= scale
            yield xp.reshape(block, (batch, out_channels, width))

    return _join(xp, blocks(), -1, geometry.out_length)


def input_grad_blocks(
    xp: Namespace, delta: Array, weight: Array, geometry: Conv1dGeometry, *, scale: float = 1.0
) -> Array:
    """dgrad, ``scale * grad_input`` of shape ``(N, C, L)``, from ``grad_output`` ``delta``.

    Padded input position ``t = l s + k d`` received ``w[o, i, k] delta[n, o, l]``
    in the forward pass, so its gradient gathers ``conj(w[o, i, k]) delta[n, o, l]``
    over every ``(k, l)`` with ``l s + k d = t``. Written over all ``k`` this is
    a stride-1 correlation of ``delta`` spread onto a grid of step ``s`` (zeros
    between) with the kernel reversed: ``t - k d`` must be a multiple of ``s``.

    The zeros are never multiplied: split ``t = r + s m`` into phases
    ``r = 0 .. s-1``. Tap ``k`` reaches phase ``r = k d mod s`` only, at
    ``l = m - q`` with ``q = floor(k d / s)``; so phase ``r`` is the
    correlation of ``delta`` with the taps of that phase, read backwards,
    and the phases interleave into the result. With ``s = 1`` there is one
    phase, every tap, ``q = k d``.
    """
    batch, groups, stride = geometry.batch_size, geometry.groups, geometry.stride
    dilation = geometry.dilation
    out_channels, fan_in, kernel_size = weight.shape
    out_per_group = out_channels // groups
    # (G, C_g, O_g) per tap: each group's matrix transposed and conjugated.
    weight_t = conj_if_complex(
        xp,
        xp.permute_dims(
            xp.reshape(weight, (groups, out_per_group, fan_in, kernel_size)), (0, 2, 1, 3)
        ),
    )
    phases: list[list[tuple[Array, int]]] = [[] for _ in range(stride)]
    for k in range(kernel_size):
        phase, shift = divmod(k * dilation, stride)[::-1]
        phases[phase].append((weight_t[..., k], shift))
    # Built once, before any batch chunking: the stacked matrix is a copy.
    # Stride 1 is one phase holding every tap; stacked, its matrix is (G, C_g, O_g K).
    stacked = None
    if _stack_wide(out_per_group, kernel_size, stride):
        stacked = xp.reshape(
            xp.stack([m for m, _ in phases[0]], axis=-1),
            (groups, fan_in, out_per_group * kernel_size),
        )
    band_taps = None
    if banded.applies(geometry):
        # Stride 1: tap k reaches t from delta[t + p_l - k d]; reversed, the
        # taps read delta[t + p_l - D + k d] with D = d (K - 1).
        band_taps = conj_if_complex(xp, xp.flip(weight[:, 0, :], axis=-1))
        band_first = geometry.pad_left - dilation * (kernel_size - 1)

    def chunk(part: Array, chunk_geometry: Conv1dGeometry) -> Array:
        if band_taps is not None:
            result = _banded_blocks(
                xp, part, band_taps, band_first, geometry.in_length, dilation, part.dtype
            )
            if result is not None:
                if scale != 1.0:
                    result *= scale
                return result
        return _input_grad_direct(xp, part, phases, stacked, chunk_geometry, scale)

    cached = out_per_group < _SMALL_CONTRACTION or band_taps is not None or stacked is not None
    if cached and batch > 1:
        per_item = geometry.in_length * _dgrad_bytes_per_position(
            xp, delta.dtype, geometry, stacked
        )
        chunks = _batch_chunks(batch, per_item)
        if len(chunks) > 1:
            parts = (
                chunk(delta[n0:n1, ...], replace(geometry, batch_size=n1 - n0)) for n0, n1 in chunks
            )
            return _join(xp, parts, 0, batch)
    return chunk(delta, geometry)


def _dgrad_bytes_per_position(
    xp: Namespace, dtype: Any, geometry: Conv1dGeometry, stacked: Array | None
) -> int:
    """Working memory of dgrad per batch item and input position.

    The gradient window and result (two arrays each of input and output
    channels) and, when the taps are stacked, their ``K`` stacked copies.
    """
    columns = geometry.kernel_size if stacked is not None else 0
    channels = 2 * geometry.in_channels + (2 + columns) * geometry.out_channels
    return _itemsize(xp, dtype) * channels


def _input_grad_direct(
    xp: Namespace,
    delta: Array,
    phases: list[list[tuple[Array, int]]],
    stacked: Array | None,
    geometry: Conv1dGeometry,
    scale: float,
) -> Array:
    """The polyphase sums of :func:`input_grad_blocks`, block by block along the length.

    ``phases[r]`` lists ``(matrix, shift)`` for the taps of phase ``r``;
    ``stacked`` is the single phase's matrices side by side, when stacked.
    """
    batch, groups, stride = geometry.batch_size, geometry.groups, geometry.stride
    in_channels, out_channels = geometry.in_channels, geometry.out_channels
    fan_in, out_per_group = geometry.fan_in, out_channels // groups
    kernel_size, dilation = geometry.kernel_size, geometry.dilation
    # Padded positions [s m_first, s m_last) cover the unpadded input.
    m_first = geometry.pad_left // stride
    m_last = -(-(geometry.pad_left + geometry.in_length) // stride)
    work_dtype = delta.dtype
    per_position = batch * stride * _dgrad_bytes_per_position(xp, work_dtype, geometry, stacked)
    length = _block_length(
        m_last - m_first,
        per_position,
        out_per_group < _SMALL_CONTRACTION,
        stacked=stacked is not None,
    )
    max_shift = (kernel_size - 1) * dilation // stride

    def blocks() -> Iterator[Array]:
        for m0, m1 in _blocks(m_first, m_last, length):
            width = m1 - m0
            # delta[m - shift] for every shift, from one zero-extended segment.
            window = _segment(xp, delta, m0 - max_shift, m1)
            window = xp.reshape(window, (batch, groups, out_per_group, window.shape[-1]))
            per_phase = []
            for taps in phases:
                if taps:
                    gathered = [
                        window[..., max_shift - shift : max_shift - shift + width]
                        for _, shift in taps
                    ]
                    block = _sum_of_products(xp, [m for m, _ in taps], gathered, stacked)
                else:
                    block = xp.zeros(
                        (batch, groups, fan_in, width), dtype=work_dtype, device=device_of(delta)
                    )
                per_phase.append(xp.reshape(block, (batch, in_channels, width)))
            if stride == 1:
                joined = per_phase[0]
            else:
                joined = xp.reshape(
                    xp.stack(per_phase, axis=-1), (batch, in_channels, width * stride)
                )
            # Keep only the unpadded positions of this block.
            lo = max(geometry.pad_left, m0 * stride) - m0 * stride
            hi = min(geometry.pad_left + geometry.in_length, m1 * stride) - m0 * stride
            joined = joined[..., lo:hi]
            if scale != 1.0:
                joined *= scale
            yield joined

    return _join(xp, blocks(), -1, geometry.in_length)


def weight_grad_blocks(
    xp: Namespace, delta: Array, x: Array, geometry: Conv1dGeometry, *, scale: float = 1.0
) -> Array:
    """wgrad, ``scale * grad_weight`` of shape ``(O, C / G, K)``.

    For each tap ``k``: ``sum_{n,l} delta[n, o, l] conj(x_pad[n, g C_g + i, l s + k d])``,
    a correlation of the input with the output gradient. Blocks of ``l``
    are summed one after another.
    """
    batch, groups, stride = geometry.batch_size, geometry.groups, geometry.stride
    kernel_size, fan_in = geometry.kernel_size, geometry.fan_in
    out_channels = geometry.out_channels
    out_per_group = out_channels // groups
    work_dtype = delta.dtype
    small = out_per_group * fan_in < _SMALL_CONTRACTION
    use_columns = not small and stride > 1
    itemsize = _itemsize(xp, work_dtype)
    if small and batch > 1:
        per_item = itemsize * geometry.out_length * (geometry.in_channels * 3 + out_channels)
        chunks = _batch_chunks(batch, per_item)
        if len(chunks) > 1:
            total = None
            for n0, n1 in chunks:
                part = weight_grad_blocks(
                    xp, delta[n0:n1, ...], x[n0:n1, ...], replace(geometry, batch_size=n1 - n0)
                )
                total = part if total is None else total + part
            assert total is not None
            return total * scale if scale != 1.0 else total
    columns = kernel_size if use_columns else 1
    per_position = (
        itemsize * batch * (geometry.in_channels * (2 * stride + columns + 1) + out_channels)
    )
    length = _block_length(geometry.out_length, per_position, small)
    total = None
    for l0, l1 in _blocks(0, geometry.out_length, length):
        width = l1 - l0
        gradient = xp.reshape(delta[..., l0:l1], (batch, groups, out_per_group, width))
        taps = _input_taps(xp, x, geometry, l0, width, work_dtype, conjugate=not small)
        if use_columns:
            joined = _stack_taps(xp, taps)
            product = xp.matmul(gradient, xp.permute_dims(joined, (0, 1, 3, 2)))
            block = xp.reshape(
                xp.sum(product, axis=0), (groups, out_per_group, fan_in, kernel_size)
            )
        else:
            per_tap = []
            for tap in taps:
                if small:
                    # vecdot conjugates its first argument: sum_l conj(x) delta.
                    product = xp.vecdot(tap[:, :, None, :, :], gradient[:, :, :, None, :])
                else:
                    product = xp.matmul(gradient, xp.permute_dims(tap, (0, 1, 3, 2)))
                per_tap.append(xp.sum(product, axis=0))  # (G, O_g, C_g)
            block = xp.stack(per_tap, axis=-1)
        if total is None:
            total = block
        else:
            total += block
    assert total is not None
    grad_weight = xp.reshape(total, (out_channels, fan_in, kernel_size))
    return grad_weight * scale if scale != 1.0 else grad_weight


def _itemsize(xp: Namespace, dtype: Any) -> int:
    return int(xp.finfo(dtype).bits // 8) * (2 if xp.isdtype(dtype, "complex floating") else 1)


# --------------------------------------------------------------------------
# Public wrappers: checked arguments, batched or unbatched arrays, any dtype
# of the policy in uscale_ref._backend.


def _check_size(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")


def check_grad_output(grad_output: Array, geometry: Conv1dGeometry) -> None:
    """Raise ValueError unless ``grad_output`` has the output's shape."""
    if tuple(grad_output.shape) != geometry.output_shape:
        raise ValueError(
            f"grad_output must have the output's shape {geometry.output_shape}, "
            f"got {tuple(grad_output.shape)}"
        )


def correlate(
    input: Array,
    weight: Array,
    *,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> Array:
    """Unscaled, bias-free 1-D cross-correlation (what deep learning calls convolution).

    Parameters
    ----------
    input : array, shape (N, C, L) or (C, L)
    weight : array, shape (O, C / groups, K)
    stride, padding, dilation, groups
        As for :func:`uscale_ref.conv1d`.

    Returns
    -------
    array, shape (N, O, L_out) or (O, L_out)

    Notes
    -----
    .. math:: y[n, o, l] = \\sum_{i=0}^{C_g - 1} \\sum_{k=0}^{K-1} w[o, i, k]\\;
              x_\\text{pad}[n, g C_g + i,\\; l s + k d], \\qquad g = \\lfloor o / O_g \\rfloor .

    Examples
    --------
    >>> import numpy as np
    >>> correlate(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[[1.0, -1.0]]]))
    array([[-1., -1., -1.]])
    """
    xp = check_arrays(input=input, weight=weight)
    geometry = conv1d_geometry(
        input.shape, weight.shape, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    x = input if geometry.batched else xp.expand_dims(input, axis=0)
    y = forward_blocks(xp, x, to_work(xp, weight), geometry)
    return from_work(xp, y, input.dtype, drop_batch_axis=not geometry.batched)


def correlate_input_grad(
    grad_output: Array,
    weight: Array,
    *,
    input_length: int,
    batched: bool = True,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> Array:
    """Unscaled dgrad: the vector-Jacobian product of :func:`correlate` with respect to input.

    Parameters
    ----------
    grad_output : array, shape (N, O, L_out) or (O, L_out)
        Gradient of a real loss with respect to the correlation's output.
    weight : array, shape (O, C / groups, K)
    input_length : int
        ``L``. Needed because, with ``stride > 1``, several input lengths give
        the same ``L_out`` (the output-length ambiguity of a transposed
        convolution).
    batched : bool
        Whether ``grad_output`` has a batch axis (default True).
    stride, padding, dilation, groups
        As for :func:`uscale_ref.conv1d`.

    Returns
    -------
    array, shape (N, C, L) or (C, L)

    Notes
    -----
    .. math:: \\frac{\\partial\\mathcal L}{\\partial x}[n, g C_g + i, t] =
              \\sum_{j, k, l \\,:\\, l s + k d = t + p_l}
              \\overline{w[g O_g + j, i, k]}\\; \\delta[n, g O_g + j, l]

    Examples
    --------
    >>> import numpy as np
    >>> correlate_input_grad(np.array([[1.0, 0.0, 0.0]]), np.array([[[1.0, -1.0]]]),
    ...                      input_length=4, batched=False)
    array([[ 1., -1.,  0.,  0.]])
    """
    xp = check_arrays(grad_output=grad_output, weight=weight)
    _check_size("input_length", input_length)
    if grad_output.ndim not in (2, 3):
        raise ValueError(
            f"grad_output must have 2 or 3 dimensions, got shape {tuple(grad_output.shape)}"
        )
    batch = (grad_output.shape[0],) if batched else ()
    in_channels = weight.shape[1] * groups if isinstance(groups, int) else weight.shape[1]
    geometry = conv1d_geometry(
        (*batch, in_channels, input_length),
        weight.shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    check_grad_output(grad_output, geometry)
    delta = to_work(xp, grad_output, add_batch_axis=not batched)
    grad_input = input_grad_blocks(xp, delta, to_work(xp, weight), geometry)
    return from_work(xp, grad_input, weight.dtype, drop_batch_axis=not batched)


def correlate_weight_grad(
    grad_output: Array,
    input: Array,
    *,
    kernel_size: int,
    stride: int | tuple[int] = 1,
    padding: int | tuple[int] | str = 0,
    dilation: int | tuple[int] = 1,
    groups: int = 1,
) -> Array:
    """Unscaled wgrad: the vector-Jacobian product of :func:`correlate` with respect to weight.

    Parameters
    ----------
    grad_output : array, shape (N, O, L_out) or (O, L_out)
    input : array, shape (N, C, L) or (C, L)
    kernel_size : int
        ``K``; with ``stride > 1`` it is not implied by the other shapes.
    stride, padding, dilation, groups
        As for :func:`uscale_ref.conv1d`.

    Returns
    -------
    array, shape (O, C / groups, K)

    Notes
    -----
    .. math:: \\frac{\\partial\\mathcal L}{\\partial w}[o, i, k] =
              \\sum_{n, l} \\delta[n, o, l]\\;
              \\overline{x_\\text{pad}[n, g C_g + i,\\; l s + k d]}

    Examples
    --------
    >>> import numpy as np
    >>> correlate_weight_grad(np.array([[1.0, 0.0, 0.0]]), np.array([[1.0, 2.0, 3.0, 4.0]]),
    ...                       kernel_size=2)
    array([[[1., 2.]]])
    """
    xp = check_arrays(grad_output=grad_output, input=input)
    _check_size("kernel_size", kernel_size)
    if grad_output.ndim != input.ndim:
        raise ValueError(
            f"grad_output and input must both be batched or both unbatched, got shapes "
            f"{tuple(grad_output.shape)} and {tuple(input.shape)}"
        )
    in_channels = input.shape[-2]
    fan_in = in_channels // groups if isinstance(groups, int) and groups > 0 else in_channels
    geometry = conv1d_geometry(
        input.shape,
        (grad_output.shape[-2], fan_in, kernel_size),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
    )
    check_grad_output(grad_output, geometry)
    x = input if geometry.batched else xp.expand_dims(input, axis=0)
    delta = to_work(xp, grad_output, add_batch_axis=not geometry.batched)
    grad_weight = weight_grad_blocks(xp, delta, x, geometry)
    return from_work(xp, grad_weight, input.dtype)
