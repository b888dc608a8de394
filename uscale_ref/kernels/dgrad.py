"""The dgrad kernel: ``scale * grad_input`` in polyphase form, phase by phase and block by block.

Its textbook counterpart is :func:`uscale_ref.textbook.input_grad`: a stride-1
correlation of the zero-inserted, padded output gradient with the flipped,
conjugated, group-transposed kernel, whose inserted and padding zeros are
placeholders that are never multiplied. Here those zeros are not even
built.

Padded position ``u = t + p_l`` received ``w[o, i, k] delta[n, o, l]`` in
the forward pass whenever ``u = l s + k d``. Split ``u = s m + r`` into
phases ``r = 0 .. s - 1`` and each tap ``k d = s q + r_k``: tap ``k`` reaches
phase ``r_k`` only, from ``l = m - q``. So phase ``r`` is a correlation of
``delta`` with that phase's taps, shifted by their ``q``; phases that no tap
reaches are zero, and the phases interleave into the result.
"""

from __future__ import annotations

from .._backend import Array, Namespace, conj_if_complex, device_of, has_values, is_writeable
from ..geometry import Conv1dGeometry
from . import banded, folded
from .blocks import join, map_blocks, ranges, walk, window, windows, zeros_like_shape
from .plan import Plan, dgrad_phases
from .products import contract, sum_over_taps

__all__ = ["input_grad"]


def _add_at(xp: Namespace, total: Array, offset: int, part: Array) -> Array:
    """``total[..., offset : offset + B] += part`` (by adding zero-extended ``part`` for JAX)."""
    if is_writeable(total):
        total[..., offset : offset + part.shape[-1]] += part
        return total
    lead = tuple(part.shape[:-1])
    after = total.shape[-1] - offset - part.shape[-1]
    pieces = [zeros_like_shape(xp, part, (*lead, offset)), part]
    pieces.append(zeros_like_shape(xp, part, (*lead, after)))
    return total + xp.concat(pieces, axis=-1)


def input_grad(
    xp: Namespace,
    delta: Array,
    weight: Array,
    geometry: Conv1dGeometry,
    plan: Plan,
    *,
    scale: float = 1.0,
) -> Array:
    """``scale * grad_input`` of shape ``(N, C, L)`` from the batched ``delta`` (working dtype).

    Why it equals the textbook: the textbook's correlation, at position
    ``t``, multiplies flipped tap ``k`` with the zero-inserted gradient at
    ``u = t + p_l - k d`` past the left padding; it holds ``delta[l]`` exactly
    when ``u = l s`` for an ``l`` in ``[0, L_out)``, and a placeholder zero
    otherwise. Those are the pairs ``(k, l)`` summed here, phase by phase,
    and nothing else. Past ``delta``'s ends the windows read zeros, which
    with finite taps add exact zeros; when a tap is NaN or inf (or the plan
    asks for exact edges) edge blocks add each tap only over the ``l`` it
    really has, so a NaN or inf weight meets no placeholder.
    """
    groups, out_channels, fan_in = geometry.groups, geometry.out_channels, geometry.fan_in
    out_per_group, stride = out_channels // groups, geometry.stride
    batch, length = geometry.batch_size, geometry.in_length
    # A zero beyond delta's ends times a finite tap adds an exact zero; only
    # a NaN or inf tap needs the edges done tap by tap. Traced code cannot
    # look at the weight, so its plan always asks for exact edges; nor can
    # a torch meta tensor's values be read.
    finite = not plan.exact_edges and has_values(weight) and bool(xp.all(xp.isfinite(weight)))
    bands = None
    if plan.path == "banded" and finite:  # else every block sums directly
        # Stride 1: tap k reaches t from delta[t + p_l - k d]; reversed, the
        # taps read delta[t + p_l - D + k d] with D = d (K - 1).
        span = geometry.dilation * (geometry.kernel_size - 1)
        flipped = conj_if_complex(xp, xp.flip(weight[:, 0, :], axis=-1))
        bands = banded.Bands(xp, flipped, geometry.dilation, geometry.pad_left - span)

    # (G, C_g, O_g, K): each group's matrix transposed and conjugated.
    weight_t = conj_if_complex(
        xp,
        xp.permute_dims(xp.reshape(weight, (groups, out_per_group, fan_in, -1)), (0, 2, 1, 3)),
    )
    shape = (batch, geometry.in_channels, length)
    phases = {
        r: _Phase(xp, delta, weight_t, taps, geometry, plan, scale, finite, bands)
        for r, taps in dgrad_phases(geometry).items()
    }
    if stride == 1:
        return phases[0].run(geometry.pad_left, geometry.pad_left + length)
    if stride <= geometry.kernel_size:
        return _interleaved(xp, phases, delta, geometry, plan)
    return _phase_by_phase(xp, phases, delta, geometry, plan, shape)


def _interleaved(
    xp: Namespace, phases: dict[int, _Phase], delta: Array, geometry: Conv1dGeometry, plan: Plan
) -> Array:
    """Strides up to ``K``: each block computes every phase over the same ``m`` and interleaves.

    Block ``[m0, m1)`` covers padded positions ``[s m0, s m1)``: phase ``r``
    gives positions ``s m + r``, stacked last and flattened they are in
    order; the block keeps the ones inside the input. (At most ``K``
    phases, so a phase no tap reaches costs one zero block.)
    """
    stride, pad_left, length = geometry.stride, geometry.pad_left, geometry.in_length
    block_length = max(1, plan.block_length // stride)

    shifts = [q for phase in phases.values() for q in phase.shifts]
    reach = max(shifts) - min(shifts)
    out_per_group = geometry.out_channels // geometry.groups

    def block(n0: int, n1: int, m0: int, m1: int) -> Array:
        shared = None
        # One gradient window for every phase (a folded phase cuts its own).
        if plan.path != "folded" and reach <= (m1 - m0) * len(shifts):
            rows = xp.reshape(
                delta[n0:n1, ...], (n1 - n0, geometry.groups, out_per_group, geometry.out_length)
            )
            first = m0 - max(shifts)
            shared = (window(xp, rows, first, m1 - m0 + reach), first)
        per_phase = []
        for r in range(stride):
            if r in phases:
                per_phase.append(phases[r].block(n0, n1, m0, m1, shared))
            else:
                shape = (n1 - n0, geometry.in_channels, m1 - m0)
                per_phase.append(zeros_like_shape(xp, delta, shape))
        joined = xp.reshape(
            xp.stack(per_phase, axis=-1), (n1 - n0, geometry.in_channels, (m1 - m0) * stride)
        )
        lo = max(pad_left, m0 * stride) - m0 * stride
        hi = min(pad_left + length, m1 * stride) - m0 * stride
        return joined[..., lo:hi]

    m_first, m_last = pad_left // stride, -(-(pad_left + length) // stride)

    def chunk(n0: int, n1: int) -> Array:
        blocks = (block(n0, n1, m0, m1) for m0, m1 in ranges(m_first, m_last, block_length))
        return join(xp, blocks, -1, length)

    return join(
        xp,
        (chunk(n0, n1) for n0, n1 in ranges(0, geometry.batch_size, plan.batch_chunk)),
        0,
        geometry.batch_size,
    )


def _phase_by_phase(
    xp: Namespace,
    phases: dict[int, _Phase],
    delta: Array,
    geometry: Conv1dGeometry,
    plan: Plan,
    shape: tuple[int, int, int],
) -> Array:
    """Strides beyond ``K``: each phase on its own, written to every ``s``-th position.

    At most ``K`` of the ``s`` phases have taps; the others stay zero, so
    the cost follows ``K`` and the input length, never ``s``.
    """
    stride, pad_left, length = geometry.stride, geometry.pad_left, geometry.in_length
    result = zeros_like_shape(xp, delta, shape) if is_writeable(delta) else None
    parts: list[tuple[int, Array]] = []
    for r, phase in phases.items():
        # Input positions t = s m + r - p_l of this phase, for m in [m_start, m_stop).
        m_start = -(-(pad_left - r) // stride)
        m_stop = -(-(pad_left + length - r) // stride)
        if m_stop <= m_start:
            continue
        if result is None:
            parts.append((stride * m_start + r - pad_left, phase.run(m_start, m_stop)))
            continue
        for n0, n1, m0, m1 in walk(plan, geometry.batch_size, m_start, m_stop, phase.cuts):
            t0 = stride * m0 + r - pad_left
            result[n0:n1, :, t0 : t0 + (m1 - m0 - 1) * stride + 1 : stride] = phase.block(
                n0, n1, m0, m1
            )
    return result if result is not None else _gather(xp, parts, delta, shape, stride)


class _Phase:
    """One phase: ``sum_{(k, q)} W_k^H delta[..., m - q]``, block by block over ``m``."""

    def __init__(
        self,
        xp: Namespace,
        delta: Array,
        weight_t: Array,
        taps: list[tuple[int, int]],
        geometry: Conv1dGeometry,
        plan: Plan,
        scale: float,
        finite: bool,
        bands: banded.Bands | None = None,
    ) -> None:
        groups = geometry.groups
        self.bands = bands  # stride 1 only: the single phase as band products
        self.xp, self.delta, self.geometry, self.plan, self.scale = xp, delta, geometry, plan, scale
        self.matrices = [weight_t[..., k] for k, _ in taps]  # (G, C_g, O_g) each
        self.shifts = [q for _, q in taps]
        self.stacked = None
        if plan.path == "stacked":
            self.stacked = xp.reshape(
                xp.stack(self.matrices, axis=-1),
                (groups, geometry.fan_in, (geometry.out_channels // groups) * len(taps)),
            )
        # Where every tap reads inside delta (0 <= m - q < L_out): the interior.
        self.interior = (max(self.shifts), min(self.shifts) + geometry.out_length)
        self.finite = finite
        self.cuts = () if finite else self.interior

    def block(
        self, n0: int, n1: int, m0: int, m1: int, shared: tuple[Array, int] | None = None
    ) -> Array:
        """Positions ``m`` in ``[m0, m1)`` of batch items ``[n0, n1)``, ``(n, C, m1 - m0)``.

        ``shared`` is ``(segment, first)``: the zero-extended gradient from
        ``l = first`` on, already cut for several phases, to take views of.
        """
        xp, geometry = self.xp, self.geometry
        groups, out_length = geometry.groups, geometry.out_length
        out_per_group = geometry.out_channels // groups
        broadcast = self.plan.path in ("broadcast", "banded")
        if self.bands is not None:  # positions t = m - p_l; None: data not finite, sum directly
            t0, rows = m0 - geometry.pad_left, self.delta[n0:n1, ...]
            result = self.bands.correlate(rows, t0, t0 + m1 - m0, self.delta.dtype)
            if result is not None:
                return result * self.scale if self.scale != 1.0 else result
        rows = xp.reshape(self.delta[n0:n1, ...], (n1 - n0, groups, out_per_group, out_length))
        # Zero-extended windows: past delta's ends they meet only finite taps.
        zero_extended = self.finite or (self.interior[0] <= m0 and m1 <= self.interior[1])
        if zero_extended and self.plan.path == "folded":
            result = self._folded(n0, n1, m0, m1)
        elif zero_extended:
            if shared is None:
                columns = windows(xp, rows, [m0 - q for q in self.shifts], m1 - m0)
            else:
                segment, first = shared
                columns = [segment[..., m0 - q - first : m1 - q - first] for q in self.shifts]
            result = sum_over_taps(xp, self.matrices, columns, self.stacked, broadcast)
        else:  # an edge: each tap only over the l = m - q that exist
            result = zeros_like_shape(xp, self.delta, (n1 - n0, groups, geometry.fan_in, m1 - m0))
            for matrix, q in zip(self.matrices, self.shifts, strict=True):
                a, b = max(m0, q), min(m1, q + out_length)
                if a < b:
                    product = contract(xp, matrix, rows[..., a - q : b - q], broadcast)
                    result = _add_at(xp, result, a - m0, product)
        result = xp.reshape(result, (n1 - n0, geometry.in_channels, m1 - m0))
        if self.scale != 1.0:
            result *= self.scale
        return result

    def _folded(self, n0: int, n1: int, m0: int, m1: int) -> Array:
        """The zero-extended sum of :meth:`block` with the batch items end to end.

        Each item's segment starts at ``l = m0 - max(q)``; tap ``(k, q)``
        reads it ``max(q) - q`` further on (:mod:`~uscale_ref.kernels.folded`).
        """
        last = max(self.shifts)
        offsets = [last - q for q in self.shifts]
        rows, groups = self.delta[n0:n1, ...], self.geometry.groups
        return folded.correlate(
            self.xp, self.matrices, offsets, rows, groups, m0 - last, m1 - m0, self.delta.dtype
        )

    def run(self, m_start: int, m_stop: int) -> Array:
        """The whole phase, ``[m_start, m_stop)``, its blocks joined."""
        return map_blocks(
            self.xp, self.plan, self.block, self.geometry.batch_size, m_start, m_stop, self.cuts
        )


def _gather(
    xp: Namespace,
    parts: list[tuple[int, Array]],
    like: Array,
    shape: tuple[int, int, int],
    stride: int,
) -> Array:
    """The result whose positions ``t0, t0 + s, ...`` hold each ``(t0, phase)``; zeros elsewhere.

    For arrays that cannot be written in place (JAX): every position is
    gathered from the phases laid end to end, after one zero.
    """
    zero = zeros_like_shape(xp, like, (*shape[:-1], 1))
    flat = xp.concat([zero, *(phase for _, phase in parts)], axis=-1)
    positions = xp.arange(shape[-1], device=device_of(like))
    index = xp.zeros_like(positions)
    offset = 1
    for t0, phase in parts:
        count = phase.shape[-1]
        hit = (positions >= t0) & ((positions - t0) % stride == 0)
        hit = hit & (positions < t0 + count * stride)
        index = xp.where(hit, offset + (positions - t0) // stride, index)
        offset += count
    return xp.take(flat, index, axis=-1)
