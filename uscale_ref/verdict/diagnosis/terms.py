"""The terms of a result element at chosen positions, as the definition or a mistaken kernel
forms them.

Every element of every result is ``s (sum_t a_t b_t + bias)``:

* ``output[n, o, l]``: ``a = w[o, i, k]``, ``b = x[n, g C_g + i, l s + k d - p]`` over
  the group's input channels ``i`` and the taps ``k``, plus ``bias[o]``;
* ``grad_input[n, c, l]``: ``a = conj(w[o, i, k])``, ``b = grad_output[n, o, q]`` over the
  group's output channels ``o`` and the taps ``k`` with ``l + p - k d = q s``;
* ``grad_weight[o, i, k]``: ``a = grad_output[n, o, q]``, ``b = conj(x[n, g C_g + i, q s +
  k d - p])`` over the batch ``n`` and the output positions ``q``;
* ``grad_bias[o]``: ``a = grad_output[n, o, q]``, ``b = 1``.

A :class:`Variant` changes one thing of this (the indexing, a conjugate, the
taps' order, the bias, the multiplicands' format), so that a mistake's
result can be computed at a few hundred positions in float64 instead of over
the whole layer. Inputs come from a :class:`~uscale_ref.exact.points.Source`:
arrays in memory or a compact case's seeds, element by element.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ...exact.points import Source
from ...geometry import Conv1dGeometry

__all__ = ["Products", "Rows", "Terms", "Variant"]

Index = npt.NDArray[np.int64]
Values = npt.NDArray[Any]
#: Gathered terms per block of positions: a block holds about this many.
BLOCK_TERMS = 2**20
#: Sets of gathered terms kept for variants that read the same inputs.
KEPT = 4


@dataclass(frozen=True)
class Variant:
    """How a kernel forms its terms; every field at its default is the definition.

    Attributes
    ----------
    stride, dilation : int or None
        The step between output positions and between taps in the indexing
        ``q s + k d`` (None: the case's own).
    pad_left : int or None
        The zeros before the input (None: the case's own).
    flip : bool
        Taps read in reverse (a true convolution).
    conj_forward, conj_dgrad, conj_wgrad : bool
        Whether the forward, dgrad and wgrad conjugate their weight / input.
    strided_channels : bool
        Group ``g`` reads input channels ``g, g + G, ...`` instead of a block.
    weight_groups : tuple of int or None
        Group ``g`` uses the weight (and bias) block of group ``weight_groups[g]``.
    drop_tap : int or None
        This tap left out of every sum.
    operands : callable or None
        Applied to every multiplicand (and nothing else): a narrow format's rounding.
    bias : str
        ``"inside"`` (``s (sum + b)``), ``"after"`` (``s sum + b``), ``"missing"`` or
        ``"twice"`` (``s (sum + s b)``).
    output_rows : tuple of int or None
        The output's channel ``o`` holds the true channel ``output_rows[o]``.
    grad_rows : tuple of int or None
        The gradients read ``grad_output`` channel ``grad_rows[o]`` as channel ``o``.
    items : int or None
        grad_weight and grad_bias sum over the first ``items`` batch items only.
    results : callable or None
        Applied to every result: how the kernel rounds it, where it rounds otherwise
        than to nearest.
    """

    stride: int | None = None
    dilation: int | None = None
    pad_left: int | None = None
    flip: bool = False
    conj_forward: bool = False
    conj_dgrad: bool = True
    conj_wgrad: bool = True
    strided_channels: bool = False
    weight_groups: tuple[int, ...] | None = None
    drop_tap: int | None = None
    operands: Callable[[Values], Values] | None = None
    bias: str = "inside"
    output_rows: tuple[int, ...] | None = None
    grad_rows: tuple[int, ...] | None = None
    items: int | None = None
    results: Callable[[Values], Values] | None = None


DEFINITION = Variant()


class Rows:
    """A :class:`~uscale_ref.exact.points.Source` that draws whole rows (the last axis) of
    ``input`` and ``grad_output`` once and serves every element from them: the mistakes
    of one array read elements of the same few rows again and again, and a compact
    fixture's source computes each element from its seed."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.names = source.names
        self._slots: dict[str, Index] = {}
        self._table: dict[str, npt.NDArray[Any]] = {}

    def shape(self, name: str) -> tuple[int, ...]:
        return self.source.shape(name)

    def whole(self, name: str) -> npt.NDArray[Any]:
        return self.source.whole(name)

    def exponent(self, name: str) -> int:
        return self.source.exponent(name)

    def at(self, name: str, flat: Index) -> npt.NDArray[Any]:
        if name not in ("input", "grad_output"):
            return self.source.at(name, flat)
        shape = self.source.shape(name)
        length = shape[-1]
        if name not in self._slots:  # each row's place in the table, -1 until drawn
            self._slots[name] = np.full(int(np.prod(shape[:-1])), -1, dtype=np.int64)
            self._table[name] = np.empty((0, length))
        slots = self._slots[name]
        row, column = np.divmod(np.asarray(flat, dtype=np.int64), length)
        slot = slots[row]
        absent = slot < 0
        if absent.any():
            wanted = np.zeros(slots.size, dtype=bool)  # a mark per row: no sort, no hash
            wanted[row[absent]] = True
            missing = np.flatnonzero(wanted)
            positions = (missing[:, None] * length + np.arange(length)).reshape(-1)
            values = np.asarray(self.source.at(name, positions)).reshape(missing.size, length)
            table = self._table[name]
            slots[missing] = table.shape[0] + np.arange(missing.size)
            self._table[name] = np.concatenate([table.astype(values.dtype), values])
            slot = slots[row]
        slot *= length
        slot += column
        result: npt.NDArray[Any] = self._table[name].reshape(-1)[slot]
        return result


@dataclass(frozen=True)
class Products:
    """The terms of a block of positions: ``a``, ``b`` of shape ``(positions, terms)`` (0 where
    a term falls outside the input), the bias term and the scale of each element."""

    a: Values
    b: Values
    bias: Values
    scale: float

    def value(self) -> Values:
        """``s (sum_t a_t b_t + bias)``."""
        total: Values = np.einsum("st,st->s", self.a, self.b) + self.bias
        return self.scale * total

    def magnitude(self) -> npt.NDArray[np.float64]:
        """``|s| (sum_t |a_t| |b_t| + |bias|)``, absolute values as ``|re| + |im|``."""
        total = np.einsum("st,st->s", _l1(self.a), _l1(self.b)) + _l1(self.bias)
        magnitude: npt.NDArray[np.float64] = abs(self.scale) * total
        return magnitude


def _l1(a: Values) -> npt.NDArray[np.float64]:
    if np.iscomplexobj(a):
        return np.asarray(np.abs(a.real) + np.abs(a.imag), dtype=np.float64)
    return np.asarray(np.abs(a), dtype=np.float64)


class Terms:
    """The terms of one case's results at any positions, for any :class:`Variant`.

    Parameters
    ----------
    source : Source
        The case's inputs, element by element.
    geometry : Conv1dGeometry
        The case's sizes and arguments.
    scales : dict
        ``output``, ``grad_input``, ``grad_weight``, ``grad_bias`` scales.
    complex_ : bool
        Whether the case is complex (terms in complex128, else float64).
    rows : Source, optional
        The same inputs served from whole rows (:class:`Rows`), for the sums that run along
        rows (grad_weight, grad_bias) where each element costs its own computation.
    """

    def __init__(
        self,
        source: Source,
        geometry: Conv1dGeometry,
        scales: dict[str, float],
        complex_: bool,
        rows: Source | None = None,
    ) -> None:
        self.source = source
        self.rows = rows or source
        self.geometry = geometry
        self.scales = dict(scales)
        self.dtype = np.dtype(np.complex128 if complex_ else np.float64)
        self._kept: OrderedDict[tuple[Any, ...], Products] = OrderedDict()

    # -- the inputs --------------------------------------------------------------------------

    def _at(self, name: str, index: Index, variant: Variant, along: bool = False) -> Values:
        """The inputs ``name`` at ``index`` as ``variant`` reads them; ``along``: for a sum
        along rows (from :attr:`rows`)."""
        source = self.rows if along else self.source
        values = np.asarray(source.at(name, index.reshape(-1))).astype(self.dtype)
        values = values.reshape(index.shape)
        if variant.operands is not None and name != "bias":
            values = variant.operands(values)
        return values

    def _bias(self, rows: Index, variant: Variant) -> Values:
        if "bias" not in self.source.names:
            return np.zeros(rows.shape, dtype=self.dtype)
        return self._at("bias", rows, replace(variant, operands=None))

    # -- the index arithmetic ----------------------------------------------------------------

    def _shape(self) -> tuple[int, int, int, int, int, int]:
        geo = self.geometry
        return (geo.batch_size, geo.in_channels, geo.in_length, geo.out_channels,
                geo.kernel_size, geo.out_length)  # fmt: skip

    def _steps(self, variant: Variant) -> tuple[int, int, int]:
        geo = self.geometry
        stride = geo.stride if variant.stride is None else variant.stride
        dilation = geo.dilation if variant.dilation is None else variant.dilation
        pad = geo.pad_left if variant.pad_left is None else variant.pad_left
        return stride, dilation, pad

    def _channel(self, group: Index, inner: Index, variant: Variant) -> Index:
        """The input channel a group's ``inner``-th input channel is."""
        geo = self.geometry
        if variant.strided_channels:
            return inner * geo.groups + group
        return group * geo.fan_in + inner

    def _weight_row(self, row: Index, variant: Variant) -> Index:
        if variant.weight_groups is None:
            return row
        per_group = self.geometry.out_channels // self.geometry.groups
        group, inner = np.divmod(row, per_group)
        return np.asarray(variant.weight_groups)[group] * per_group + inner

    def _grad_row(self, row: Index, variant: Variant) -> Index:
        if variant.grad_rows is None:
            return row
        return np.asarray(variant.grad_rows, dtype=np.int64)[row]

    def _tap(self, k: Index, variant: Variant) -> Index:
        """The weight tap that meets spatial offset ``k``."""
        return self.geometry.kernel_size - 1 - k if variant.flip else k

    def _keep(self, k: Index, variant: Variant) -> npt.NDArray[np.bool_]:
        if variant.drop_tap is None:
            return np.ones(k.shape, dtype=bool)
        return np.asarray(k != variant.drop_tap)

    # -- the four results --------------------------------------------------------------------

    def products(self, name: str, flat: Index, variant: Variant = DEFINITION) -> Products:
        """The terms of result ``name`` at ``flat`` positions (C order, batched or not).

        Variants that differ only in how they round the multiplicands read the same
        inputs: the terms are gathered once (the last :data:`KEPT` sets are kept) and each
        such variant rounds them (rounding commutes with the conjugates and keeps zeros).
        """
        flat = np.asarray(flat, dtype=np.int64)
        plain = replace(variant, operands=None, results=None)
        key = (name, flat.tobytes(), plain)
        raw = self._kept.get(key)
        if raw is None:
            raw = {
                "output": self._output,
                "grad_input": self._grad_input,
                "grad_weight": self._grad_weight,
                "grad_bias": self._grad_bias,
            }[name](flat, plain)
            self._kept[key] = raw
            if len(self._kept) > KEPT:
                self._kept.popitem(last=False)
        else:
            self._kept.move_to_end(key)
        if variant.operands is None:
            return raw
        rounded = variant.operands
        b = raw.b if name == "grad_bias" else rounded(raw.b)  # grad_bias's b: ones, not inputs
        return Products(rounded(raw.a), b, raw.bias, raw.scale)

    def evaluate(
        self, name: str, flat: Index, variant: Variant = DEFINITION
    ) -> tuple[Values, npt.NDArray[np.float64]]:
        """Values and magnitudes of result ``name`` at ``flat``, in blocks of positions."""
        flat = np.asarray(flat, dtype=np.int64)
        per = max(1, BLOCK_TERMS // max(1, self.term_count(name)))
        values, magnitudes = [], []
        for start in range(0, flat.size, per):
            terms = self.products(name, flat[start : start + per], variant)
            values.append(terms.value())
            magnitudes.append(terms.magnitude())
        if not values:
            return np.zeros(0, self.dtype), np.zeros(0)
        value = np.concatenate(values)
        if variant.results is not None:
            value = variant.results(value)
        return value, np.concatenate(magnitudes)

    def term_count(self, name: str) -> int:
        n, _, _, o, k, lout = self._shape()
        geo = self.geometry
        return {
            "output": geo.fan_in * k,
            "grad_input": (o // geo.groups) * k,
            "grad_weight": n * lout,
            "grad_bias": n * lout,
        }[name]

    def _output(self, flat: Index, variant: Variant) -> Products:
        _, c_, length, o_, k_, lout = self._shape()
        geo = self.geometry
        stride, dilation, pad = self._steps(variant)
        n, rest = np.divmod(flat, o_ * lout)
        o, at = np.divmod(rest, lout)
        if variant.output_rows is not None:
            o = np.asarray(variant.output_rows, dtype=np.int64)[o]
        group = o // (o_ // geo.groups)
        inner = np.arange(geo.fan_in)[None, :, None]
        k = np.arange(k_)[None, None, :]
        position = at[:, None, None] * stride + k * dilation - pad
        inside = (position >= 0) & (position < length) & self._keep(k, variant)
        channel = self._channel(group[:, None, None], inner, variant)
        x_index = (n[:, None, None] * c_ + channel) * length + np.clip(position, 0, length - 1)
        x = np.where(inside, self._at("input", x_index, variant), 0)
        row = self._weight_row(o, variant)
        w_index = (row[:, None, None] * geo.fan_in + inner) * k_ + self._tap(k, variant)
        w = self._at("weight", np.broadcast_to(w_index, x_index.shape), variant)
        if variant.conj_forward:
            w = np.conj(w)
        bias = self._bias(self._weight_row(o, variant), variant)
        scale = self.scales["output"]
        if variant.bias == "after":
            bias = bias / scale
        elif variant.bias == "missing":
            bias = np.zeros_like(bias)
        elif variant.bias == "twice":
            bias = bias * scale
        s = flat.size
        return Products(w.reshape(s, -1), x.reshape(s, -1), bias, scale)

    def _grad_input(self, flat: Index, variant: Variant) -> Products:
        _, c_, length, o_, k_, lout = self._shape()
        geo = self.geometry
        stride, dilation, pad = self._steps(variant)
        n, rest = np.divmod(flat, c_ * length)
        c, at = np.divmod(rest, length)
        if variant.strided_channels:
            inner_c, group = np.divmod(c, geo.groups)
        else:
            group, inner_c = np.divmod(c, geo.fan_in)
        per_group = o_ // geo.groups
        j = np.arange(per_group)[None, :, None]
        k = np.arange(k_)[None, None, :]
        o = group[:, None, None] * per_group + j
        reach = at[:, None, None] + pad - k * dilation
        q, remainder = np.divmod(reach, stride)
        inside = (remainder == 0) & (q >= 0) & (q < lout) & self._keep(k, variant)
        g_index = (n[:, None, None] * o_ + self._grad_row(o, variant)) * lout + np.clip(
            q, 0, lout - 1
        )
        g = np.where(inside, self._at("grad_output", g_index, variant), 0)
        row = self._weight_row(o, variant)
        w_index = (row * geo.fan_in + inner_c[:, None, None]) * k_ + self._tap(k, variant)
        w = self._at("weight", np.broadcast_to(w_index, g_index.shape), variant)
        if variant.conj_dgrad:
            w = np.conj(w)
        s = flat.size
        return Products(w.reshape(s, -1), g.reshape(s, -1), np.zeros(s, self.dtype),
                        self.scales["grad_input"])  # fmt: skip

    def _grad_weight(self, flat: Index, variant: Variant) -> Products:
        n_, c_, length, o_, k_, lout = self._shape()
        geo = self.geometry
        stride, dilation, pad = self._steps(variant)
        o, rest = np.divmod(flat, geo.fan_in * k_)
        inner, k = np.divmod(rest, k_)
        group = o // (o_ // geo.groups)
        channel = self._channel(group, inner, variant)
        n = np.arange(variant.items or n_)[None, :, None]
        q = np.arange(lout)[None, None, :]
        spatial = self._tap(k, variant)[:, None, None]
        position = q * stride + spatial * dilation - pad
        inside = (position >= 0) & (position < length) & self._keep(spatial, variant)
        x_index = (n * c_ + channel[:, None, None]) * length + np.clip(position, 0, length - 1)
        x = np.where(inside, self._at("input", x_index, variant, along=True), 0)
        if variant.conj_wgrad:
            x = np.conj(x)
        g_index = (n * o_ + self._grad_row(o, variant)[:, None, None]) * lout + q
        g = self._at("grad_output", np.broadcast_to(g_index, x_index.shape), variant, along=True)
        s = flat.size
        return Products(g.reshape(s, -1), x.reshape(s, -1), np.zeros(s, self.dtype),
                        self.scales["grad_weight"])  # fmt: skip

    def _grad_bias(self, flat: Index, variant: Variant) -> Products:
        n_, _, _, o_, _, lout = self._shape()
        n_ = variant.items or n_
        n = np.arange(n_)[None, :, None]
        q = np.arange(lout)[None, None, :]
        g_index = (n * o_ + flat[:, None, None]) * lout + q
        g = self._at("grad_output", g_index, variant, along=True)
        s = flat.size
        return Products(g.reshape(s, -1), np.ones((s, n_ * lout), self.dtype),
                        np.zeros(s, self.dtype), self.scales["grad_bias"])  # fmt: skip


def terms_for(case: Any) -> Terms:
    """The terms of a fixture's results: from its inputs, or for a compact fixture from
    their seeds (whole rows drawn once for the long sums)."""
    from ...exact.points import ArraySource

    spec = case.spec
    scales = {name: float(value) for name, value in case.metadata["scales"].items()}
    complex_ = case.storage_dtype.startswith("complex")
    if case.compact:
        from ...golden.inputs import SeededSource

        seeded = SeededSource(spec)
        return Terms(seeded, spec.geometry, scales, complex_, Rows(seeded))
    return Terms(ArraySource(dict(case.inputs)), spec.geometry, scales, complex_)
