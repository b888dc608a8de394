"""Correct kernels and planted mistakes for calibrating the verdict.

Each kernel takes a fixture and returns its four results as a kernel under
test would hand them to the verdict: arrays of the case's storage dtype
(bfloat16 and complex32 values in float32 and complex64). The correct ones
sum in different orders and formats, as real kernels do; the mutants make
one mistake each, some far below an output unit in the last place. The
tests hold the small cases (tests/test_verdict_calibration.py);
benchmarks/verdict_calibration.py runs them all at production sizes.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import uscale_ref
from uscale_ref.formats import round_to
from uscale_ref.golden import Fixture

# Whether PyTorch's CPU backward adds its kernel taps in a narrow format on this machine.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from torch_arithmetic import taps_summed_in as taps_summed_in  # re-exported

Results = dict[str, np.ndarray]
NAMES = ("output", "grad_input", "grad_weight", "grad_bias")
NARROW = {"bfloat16": "bfloat16", "float16": "float16", "complex32": "float16"}


# -- formats ---------------------------------------------------------------------------------


def accumulation_dtype(case: Fixture) -> np.dtype:
    """What a kernel of the case's dtype sums in by default: float32 for the narrow ones."""
    return {
        "float16": np.dtype(np.float32),
        "bfloat16": np.dtype(np.float32),
        "complex32": np.dtype(np.complex64),
    }.get(case.dtype, np.dtype(case.storage_dtype))


def to_format(a: np.ndarray, format: str) -> np.ndarray:
    """``a`` rounded part by part to ``format`` (bfloat16, float16, tf32, float32), same dtype."""
    if np.iscomplexobj(a):
        return (to_format(a.real.copy(), format) + 1j * to_format(a.imag.copy(), format)).astype(
            a.dtype
        )
    if format == "float16":
        return a.astype(np.float16).astype(a.dtype)
    if format == "float32":
        return a.astype(np.float32).astype(a.dtype)
    if a.dtype == np.float16:
        return round_to(a.astype(np.float32), format).astype(a.dtype)
    return round_to(a, format)


def stored(case: Fixture, a: np.ndarray) -> np.ndarray:
    """A result computed in a wider dtype, rounded once to the case's dtype and stored."""
    a = np.asarray(a)
    if case.dtype in NARROW:
        wide = np.complex128 if np.iscomplexobj(a) else np.float64
        return to_format(a.astype(wide), NARROW[case.dtype]).astype(case.storage_dtype)
    return a.astype(case.storage_dtype)


def _inputs(case: Fixture, dtype: Any) -> tuple[np.ndarray, ...]:
    """The case's inputs in ``dtype`` (None: as stored)."""
    x, w, b, g = (case.inputs[k] for k in ("input", "weight", "bias", "grad_output"))
    return tuple(None if a is None else a if dtype is None else a.astype(dtype)
                 for a in (x, w, b, g))  # fmt: skip


def _results(case: Fixture, y: Any, grads: Any) -> Results:
    results = {"output": y, **grads._asdict()}
    return {k: stored(case, np.asarray(v)) for k, v in results.items() if k in case.expected}


# -- correct kernels -------------------------------------------------------------------------


def uscale_ref_kernel(case: Fixture, x=None, w=None, g=None) -> Results:
    """uscale_ref in the case's dtype (bfloat16 through ml_dtypes when it is installed)."""
    dtype: Any = case.storage_dtype
    if case.dtype == "bfloat16":
        try:
            import ml_dtypes

            dtype = ml_dtypes.bfloat16
        except ImportError:
            dtype = np.float32
    ins = list(_inputs(case, dtype))
    for index, given in ((0, x), (1, w), (3, g)):
        if given is not None:
            ins[index] = given.astype(dtype)
    x, w, b, g = ins
    kw = case.kwargs
    with np.errstate(all="ignore"):
        return _results(case, uscale_ref.conv1d(x, w, b, **kw),
                        uscale_ref.conv1d_backward(g, x, w, b, **kw))  # fmt: skip


def textbook_kernel(case: Fixture) -> Results:
    """uscale_ref.textbook, the definition written plainly, in the accumulation dtype."""
    x, w, b, g = _inputs(case, accumulation_dtype(case))
    kw = case.kwargs
    with np.errstate(all="ignore"):
        return _results(case, uscale_ref.textbook.conv1d(x, w, b, **kw),
                        uscale_ref.textbook.conv1d_backward(g, x, w, b, **kw))  # fmt: skip


def upstream_kernel(case: Fixture) -> Results:
    """unit_scaling.functional.conv1d and PyTorch autograd, in the case's own torch dtype."""
    import torch
    import unit_scaling.functional as U

    dtype = {
        "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
        "float64": torch.float64, "complex64": torch.complex64, "complex128": torch.complex128,
        "complex32": torch.complex32,
    }[case.dtype]  # fmt: skip
    tensors = [None if a is None else torch.tensor(a).to(dtype) for a in _inputs(case, None)]
    x, w, b, g = tensors
    for t in (x, w, b):
        if t is not None:
            t.requires_grad_()
    kw = case.kwargs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = U.conv1d(x, w, b, stride=kw["stride"], padding=kw["padding"],
                     dilation=kw["dilation"], groups=kw["groups"], constraint=kw["constraint"],
                     scale_power=kw["scale_power"])  # fmt: skip
        y.backward(g)
    out = {"output": y, "grad_input": x.grad, "grad_weight": w.grad}
    if b is not None:
        out["grad_bias"] = b.grad

    def back(t: Any) -> np.ndarray:
        t = t.detach()
        if t.dtype == torch.bfloat16:
            t = t.float()
        elif t.dtype == torch.complex32:
            t = t.to(torch.complex64)
        return t.numpy().astype(case.storage_dtype)

    return {k: back(v) for k, v in out.items()}


def jax_kernel(case: Fixture) -> Results:
    """JAX at precision HIGHEST as a user writes it: the conv, the bias, the scale, each in the
    case's dtype; the gradients by jax.vjp, scaled in the dtype."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    dtype = {"bfloat16": jnp.bfloat16, "complex32": None}.get(case.dtype, case.storage_dtype)
    if dtype is None:
        raise ValueError("JAX has no complex32")
    x, w, b, g = (None if a is None else jnp.asarray(a, dtype=dtype) for a in _inputs(case, None))
    geometry = uscale_ref.conv1d_geometry(x.shape, w.shape, **_geometry_kwargs(case))
    scales = uscale_ref.conv1d_scales(x.shape, w.shape, **case.kwargs)
    batched = x.ndim == 3

    def conv(x, w):
        xb = x if batched else x[None]
        y = jax.lax.conv_general_dilated(
            xb, w, window_strides=(geometry.stride,),
            padding=[(geometry.pad_left, geometry.pad_right)], rhs_dilation=(geometry.dilation,),
            feature_group_count=geometry.groups, dimension_numbers=("NCH", "OIH", "NCH"),
            precision=jax.lax.Precision.HIGHEST,
        )  # fmt: skip
        return y if batched else y[0]

    y = conv(x, w)
    if b is not None:
        y = y + b[:, None]
    y = y * scales.output
    _, pullback = jax.vjp(conv, x, w)
    dx, dw = pullback(jnp.conj(g) if jnp.iscomplexobj(g) else g)
    if jnp.iscomplexobj(g):  # jax.vjp gives the plain transpose; autograd's is its conjugate
        dx, dw = jnp.conj(dx), jnp.conj(dw)
    out = {
        "output": y,
        "grad_input": dx * scales.grad_input,
        "grad_weight": dw * scales.grad_weight,
    }
    if b is not None:
        axes = (0, 2) if batched else (1,)
        out["grad_bias"] = jnp.sum(g, axis=axes) * scales.grad_bias
    return {k: np.asarray(v.astype(jnp.float32) if case.dtype == "bfloat16" else v)
            .astype(case.storage_dtype) for k, v in out.items()}  # fmt: skip


def _geometry_kwargs(case: Fixture) -> dict[str, Any]:
    return {k: case.kwargs[k] for k in ("stride", "padding", "dilation", "groups")}


# -- the sums, term by term: for kernels that choose their own order and format ---------------


@dataclass(frozen=True)
class Terms:
    """The three sums of a case as sequences of partial arrays, in a given dtype."""

    case: Fixture
    dtype: Any

    @property
    def geometry(self) -> Any:
        x = self.case.inputs["input"]
        w = self.case.inputs["weight"]
        return uscale_ref.conv1d_geometry(x.shape, w.shape, **_geometry_kwargs(self.case))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        x, w, b, g = _inputs(self.case, self.dtype)
        if x.ndim == 2:
            x, g = x[None], g[None]
        return x, w, b, g

    def x_pad(self) -> np.ndarray:
        x = self.arrays()[0]
        geo = self.geometry
        return np.pad(x, ((0, 0), (0, 0), (geo.pad_left, geo.pad_right)))

    def _tap(self, a: np.ndarray, k: int, length: int) -> np.ndarray:
        geo = self.geometry
        start = k * geo.dilation
        return a[..., start : start + (length - 1) * geo.stride + 1 : geo.stride]

    def forward(self) -> Iterator[np.ndarray]:
        """Per input channel i of each group: ``sum_k w[o, i, k] x_pad[n, g C_g + i, ...]``."""
        x_pad, (_, w, _, _) = self.x_pad(), self.arrays()
        geo = self.geometry
        out_g, fan_in = geo.out_channels // geo.groups, w.shape[1]
        group_of = np.arange(geo.out_channels) // out_g
        for i in range(fan_in):
            channels = x_pad[:, group_of * fan_in + i]  # (N, O, Lpad): each output's channel
            term = np.zeros((x_pad.shape[0], geo.out_channels, geo.out_length), self.dtype)
            for k in range(geo.kernel_size):
                term += w[None, :, i, k, None] * self._tap(channels, k, geo.out_length)
            yield term

    def input_grad(self) -> Iterator[np.ndarray]:
        """Per output channel j of each group: its taps' contributions to grad_input (padded)."""
        _, w, _, g = self.arrays()
        geo = self.geometry
        out_g, fan_in = geo.out_channels // geo.groups, w.shape[1]
        length = geo.in_length + geo.pad_left + geo.pad_right
        wc = np.conj(w)
        for j in range(out_g):
            term = np.zeros((g.shape[0], geo.in_channels, length), self.dtype)
            for group in range(geo.groups):
                o = group * out_g + j
                channels = slice(group * fan_in, (group + 1) * fan_in)
                for k in range(geo.kernel_size):
                    start = k * geo.dilation
                    stop = start + (geo.out_length - 1) * geo.stride + 1
                    term[:, channels, start : stop : geo.stride] += (
                        wc[o, :, k][None, :, None] * g[:, o, None, :]
                    )
            yield term[..., geo.pad_left : geo.pad_left + geo.in_length]

    def weight_grad(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Per batch item and output position: its terms of grad_weight and grad_bias."""
        x_pad, (_, w, _, g) = self.x_pad(), self.arrays()
        geo = self.geometry
        out_g, fan_in = geo.out_channels // geo.groups, w.shape[1]
        group_of = np.arange(geo.out_channels) // out_g
        xc = np.conj(x_pad)
        taps = np.arange(geo.kernel_size) * geo.dilation
        for n in range(g.shape[0]):
            for position in range(geo.out_length):
                columns = xc[n][:, position * geo.stride + taps]  # (C, K)
                rows = columns.reshape(geo.groups, fan_in, -1)[group_of]  # (O, C_g, K)
                yield g[n, :, position, None, None] * rows, g[n, :, position]


def sequential(terms: Iterator[Any], rounding: Callable[[Any], Any] | None = None) -> Any:
    """A running sum; ``rounding`` applied to it after each term (a narrow accumulator)."""
    total = None
    for term in terms:
        total = term.copy() if total is None else total + term
        if rounding is not None:
            total = rounding(total)
    return total


def pairwise(terms: Iterator[Any]) -> Any:
    """Pairwise (tree) summation, in O(log n) partial sums."""
    stack: list[tuple[int, Any]] = []
    for term in terms:
        level, value = 0, term
        while stack and stack[-1][0] == level:
            value = stack.pop()[1] + value
            level += 1
        stack.append((level, value))
    total = None
    for _, value in reversed(stack):
        total = value if total is None else value + total
    return total


def summed_kernel(case: Fixture, combine: Callable[[Iterator[Any]], Any],
                  dtype: Any = None) -> Results:  # fmt: skip
    """The three sums combined by ``combine`` in ``dtype`` (default: the accumulation dtype),
    then the bias added, the scale multiplied, in that dtype, and rounded once to the case's."""
    dtype = dtype or accumulation_dtype(case)
    terms = Terms(case, dtype)
    _, w, b, _ = terms.arrays()
    scales = uscale_ref.conv1d_scales(case.inputs["input"].shape, w.shape, **case.kwargs)
    kind = np.dtype(dtype).type
    y = combine(terms.forward())
    if b is not None:
        y = y + b[None, :, None]
    y = y * kind(scales.output)
    dx = combine(terms.input_grad()) * kind(scales.grad_input)
    weight = combine(t for t, _ in terms.weight_grad()) * kind(scales.grad_weight)
    results = {"output": y, "grad_input": dx, "grad_weight": weight}
    if b is not None:
        results["grad_bias"] = combine(t for _, t in terms.weight_grad()) * kind(scales.grad_bias)
    if case.inputs["input"].ndim == 2:
        results["output"], results["grad_input"] = results["output"][0], results["grad_input"][0]
    return {k: stored(case, v) for k, v in results.items()}


def naive_kernel(case: Fixture) -> Results:
    """Plain loops: one running sum per result element, in the accumulation dtype."""
    return summed_kernel(case, sequential)


def pairwise_kernel(case: Fixture) -> Results:
    """Pairwise sums over channels (and positions for wgrad), in the accumulation dtype."""
    return summed_kernel(case, pairwise)


CORRECT: dict[str, Callable[[Fixture], Results]] = {
    "uscale_ref": uscale_ref_kernel,
    "textbook": textbook_kernel,
    "naive loop": naive_kernel,
    "pairwise sum": pairwise_kernel,
    "upstream (PyTorch CPU)": upstream_kernel,
    "JAX, precision HIGHEST": jax_kernel,
}


# -- planted mistakes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """A planted mistake: which arrays it changes, for which dtypes, and how."""

    name: str
    arrays: tuple[str, ...]
    dtypes: tuple[str, ...]
    make: Callable[[Fixture, Results], Results]

    def applies(self, case: Fixture) -> bool:
        return case.dtype in self.dtypes and all(a in case.expected for a in self.arrays)


ALL = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128", "complex32")
FULL = ("float32", "float64", "complex64", "complex128")


def _exact(case: Fixture) -> Results:
    """uscale_ref in float64/complex128: close to exact, before rounding to the dtype."""
    wide = np.complex128 if case.storage_dtype.startswith("complex") else np.float64
    x, w, b, g = _inputs(case, wide)
    kw = case.kwargs
    with np.errstate(all="ignore"):
        grads = uscale_ref.conv1d_backward(g, x, w, b, **kw)
        results = {"output": uscale_ref.conv1d(x, w, b, **kw), **grads._asdict()}
    return {k: np.asarray(v) for k, v in results.items() if k in case.expected}


def _replace(names: tuple[str, ...], make: Callable[[Fixture, Results, str], np.ndarray]):
    def mutant(case: Fixture, correct: Results) -> Results:
        results = dict(correct)
        for name in names:
            results[name] = make(case, correct, name)
        return results

    return mutant


def _zeros(case, correct, name):
    return np.zeros_like(correct[name])


def _half(case, correct, name):
    return stored(case, _exact(case)[name] * 0.5)


def _scaled(factor: float):
    def make(case, correct, name):
        return stored(case, _exact(case)[name] * (1 + factor))

    return make


def _rounded_inputs(format: str) -> Callable[[Fixture, Results], Results]:
    def mutant(case: Fixture, correct: Results) -> Results:
        x, w, _, g = (case.inputs[k] for k in ("input", "weight", "bias", "grad_output"))
        return uscale_ref_kernel(case, to_format(x, format), to_format(w, format),
                                 to_format(g, format))  # fmt: skip

    return mutant


def _channel(name: str, random_sign: bool, size: float = 2e-4):
    """One channel (row) of ``name`` off by ``size``, relatively: scaled, or with random signs."""

    def make(case, correct, array):
        exact = _exact(case)[array]
        axis = 1 if exact.ndim == 3 else 0
        row = min(77, exact.shape[axis] // 2)
        index = [slice(None)] * exact.ndim
        index[axis] = row
        change = np.zeros(exact.shape)
        if random_sign:
            signs = np.random.default_rng(7).choice([-1.0, 1.0], size=exact[tuple(index)].shape)
            change[tuple(index)] = size * signs
            return stored(case, exact + change * np.abs(exact))
        change[tuple(index)] = size
        return stored(case, exact * (1 + change))

    return make


def _dropped_tap(case: Fixture, correct: Results) -> Results:
    """The last tap left out of every sum: the forward, dgrad and wgrad."""
    wide = np.complex128 if case.storage_dtype.startswith("complex") else np.float64
    x, w, b, g = _inputs(case, wide)
    cut = w.copy()
    cut[..., -1] = 0
    kw = case.kwargs
    grads = uscale_ref.conv1d_backward(g, x, cut, b, **kw)
    weight = np.asarray(uscale_ref.conv1d_backward(g, x, w, b, **kw).grad_weight).copy()
    weight[..., -1] = 0
    results = {"output": uscale_ref.conv1d(x, cut, b, **kw), "grad_input": grads.grad_input,
               "grad_weight": weight, "grad_bias": grads.grad_bias}  # fmt: skip
    return {k: stored(case, np.asarray(v)) for k, v in results.items() if k in case.expected}


def _narrow_sum(case: Fixture, correct: Results) -> Results:
    """Running sums rounded to the case's own narrow format after each input channel (forward),
    output channel (dgrad) and position (wgrad)."""
    format = NARROW[case.dtype]
    return summed_kernel(case, lambda terms: sequential(terms, lambda a: to_format(a, format)))


MUTANTS: list[Mutant] = [
    Mutant("returns zeros", NAMES[:3], ALL, _replace(NAMES[:3], _zeros)),
    Mutant("returns half the answer", NAMES[:3], ALL, _replace(NAMES[:3], _half)),
    Mutant("inputs rounded to TF32", NAMES[:3], ("float32", "complex64"), _rounded_inputs("tf32")),
    Mutant(
        "inputs rounded to float16", NAMES[:3], ("float32", "complex64"), _rounded_inputs("float16")
    ),
    Mutant(
        "inputs rounded to bfloat16",
        NAMES[:3],
        ("float32", "complex64", "float16"),
        _rounded_inputs("bfloat16"),
    ),
    Mutant("computes in float32", NAMES[:3], ("float64", "complex128"), _rounded_inputs("float32")),
    Mutant("grad_weight = 0", ("grad_weight",), ALL, _replace(("grad_weight",), _zeros)),
    Mutant("one tap dropped", NAMES[:3], ALL, _dropped_tap),
    Mutant("running sums in the storage format", NAMES[:3], ("bfloat16", "float16"), _narrow_sum),
    *(
        Mutant(
            f"{name} scale x (1 + {factor:g})", (name,), dtypes, _replace((name,), _scaled(factor))
        )
        for name in NAMES[:3]
        for factor, dtypes in (
            (1e-4, ("float32", "complex64")),
            (1e-5, ("float32", "complex64")),
            (1e-12, ("float64", "complex128")),
            (1e-3, ("bfloat16", "float16")),
        )
    ),
    *(
        Mutant(
            f"one {name} channel off by 2e-4{' (random sign)' if sign else ''}",
            (name,),
            FULL,
            _replace((name,), _channel(name, sign)),
        )
        for name in NAMES[:3]
        for sign in (False, True)
    ),
]
