"""A catalogue of realistic kernel mistakes, each with the words its diagnosis must hold.

Each entry makes the four results a kernel with that one mistake gives on a
fixture (arrays of the case's storage dtype, as a kernel under test hands
them over), for the dtypes and geometries where the mistake can happen. The
tests hold every entry on small cases (tests/test_diagnosis_catalogue.py);
benchmarks/diagnosis_catalogue.py runs them at production sizes and prints
the table in docs/diagnosis.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from calibration import sequential, stored, summed_kernel, to_format

import uscale_ref
from uscale_ref.golden import Fixture
from uscale_ref.verdict.diagnosis.arithmetic import round_bits

Results = dict[str, np.ndarray]
NAMES = ("output", "grad_input", "grad_weight", "grad_bias")
REAL = ("float32", "float64", "bfloat16", "float16")
WIDE = ("float32", "complex64", "float64", "complex128")
EVERY = ("float32", "bfloat16", "float16", "complex64", "float64", "complex128")


def _wide(case: Fixture) -> Any:
    return np.complex128 if case.storage_dtype.startswith("complex") else np.float64


def inputs(case: Fixture, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> list:
    """The case's inputs widened, ``transform`` applied to the multiplicands."""
    wide = _wide(case)
    arrays = [None if a is None else a.astype(wide) for a in
              (case.inputs[k] for k in ("input", "weight", "bias", "grad_output"))]  # fmt: skip
    if transform is not None:
        for i in (0, 1, 3):
            arrays[i] = transform(arrays[i])
    return arrays


def run(case: Fixture, x, w, b, g, **changes) -> Results:
    """uscale_ref in float64 / complex128 on these inputs: a near-exact evaluation."""
    kwargs = {**case.kwargs, **changes}
    with np.errstate(all="ignore"):
        grads = uscale_ref.conv1d_backward(g, x, w, b, **kwargs)
        results = {"output": uscale_ref.conv1d(x, w, b, **kwargs), **grads._asdict()}
    return {k: np.asarray(v) for k, v in results.items() if k in case.expected}


def exact(case: Fixture) -> Results:
    return run(case, *inputs(case))


def finish(case: Fixture, results: Results) -> Results:
    return {k: stored(case, v) for k, v in results.items()}


@dataclass(frozen=True)
class Entry:
    """A mistake: the dtypes it is tried in, how to make it, and the words it must be named by
    (every one of ``named`` in the cause); ``factor``, the relative scale error the cause
    must state (within its stated uncertainty); ``subtle``, the dtypes where a small case
    may not show it (below a unit in the last place of the format)."""

    name: str
    dtypes: tuple[str, ...]
    make: Callable[[Fixture], Results]
    named: tuple[str, ...]
    needs: Callable[[Fixture], bool] = lambda case: True
    factor: float | None = None
    subtle: tuple[str, ...] = ()

    def applies(self, case: Fixture) -> bool:
        return case.dtype in self.dtypes and self.needs(case)


# -- the mistakes ----------------------------------------------------------------------------


def _running(bits: int) -> Callable[[Fixture], Results]:
    """Every sum a running sum rounded to ``bits`` significant bits after each term group
    (each input channel, output channel, output position), in float64 otherwise."""

    def make(case: Fixture) -> Results:
        def narrow(a: np.ndarray) -> np.ndarray:
            if np.iscomplexobj(a):
                return round_bits(a.real, bits) + 1j * round_bits(a.imag, bits)
            return round_bits(a, bits)

        return summed_kernel(case, lambda terms: sequential(terms, narrow), _wide(case))

    return make


def _batch_sum_in(format: str) -> Callable[[Fixture], Results]:
    """grad_weight summed per batch item in float64, the items added in ``format``."""

    def make(case: Fixture) -> Results:
        x, w, b, g = inputs(case)
        results = exact(case)
        total = None
        for n in range(x.shape[0]):
            item = run(case, x[n : n + 1], w, b, g[n : n + 1])["grad_weight"]
            scale_fix = _item_scale(case)
            part = item * scale_fix
            total = part if total is None else to_format(total + part, format)
        results["grad_weight"] = total
        return finish(case, results)

    return make


def _item_scale(case: Fixture) -> float:
    """The ratio of the whole batch's grad_weight scale to one item's."""
    x = case.inputs["input"]
    w = case.inputs["weight"]
    whole = uscale_ref.conv1d_scales(x.shape, w.shape, **case.kwargs).grad_weight
    one = uscale_ref.conv1d_scales((1, *x.shape[1:]), w.shape, **case.kwargs).grad_weight
    return whole / one


def _bias_sum_in(format: str) -> Callable[[Fixture], Results]:
    """grad_bias as a running sum in ``format`` over the batch and positions (JAX's and
    TensorFlow's narrow bias gradients)."""

    def make(case: Fixture) -> Results:
        results = exact(case)
        g = inputs(case)[3]
        g = g.reshape(-1, g.shape[-2], g.shape[-1]).transpose(1, 0, 2).reshape(g.shape[-2], -1)
        total = np.zeros(g.shape[0])
        for column in g.T:
            total = to_format(total + column, format)
        scale = case.metadata["scales"]["grad_bias"]
        results["grad_bias"] = to_format(total * scale, format)
        return finish(case, results)

    return make


def _scaled_part(name: str, index: Callable[[np.ndarray], tuple], factor: float):
    def make(case: Fixture) -> Results:
        results = exact(case)
        changed = results[name].copy()
        where = index(changed)
        changed[where] = changed[where] * factor
        results[name] = changed
        return finish(case, results)

    return make


def _borders(case: Fixture) -> Results:
    """The padding filled with the edge values instead of zeros (a replicate pad)."""
    x, w, b, g = inputs(case)
    geo = uscale_ref.conv1d_geometry(x.shape, w.shape, **_shape_kwargs(case))
    pad = [(0, 0)] * (x.ndim - 1) + [(geo.pad_left, geo.pad_right)]
    results = exact(case)
    results["output"] = run(case, np.pad(x, pad, mode="edge"), w, b, g, padding=0)["output"]
    return finish(case, results)


def _shape_kwargs(case: Fixture) -> dict[str, Any]:
    return {k: case.kwargs[k] for k in ("stride", "padding", "dilation", "groups")}


def _rounded_inputs(format: str) -> Callable[[Fixture], Results]:
    def make(case: Fixture) -> Results:
        def rounded(a: np.ndarray) -> np.ndarray:
            if np.iscomplexobj(a):
                return to_format(a.real.copy(), format) + 1j * to_format(a.imag.copy(), format)
            return to_format(a, format)

        return finish(case, run(case, *inputs(case, rounded)))

    return make


def _dropped_last_tap(case: Fixture) -> Results:
    x, w, b, g = inputs(case)
    cut = w.copy()
    cut[..., -1] = 0
    results = run(case, x, cut, b, g)
    results["grad_weight"][..., -1] = 0
    return finish(case, results)


def _no_bias(case: Fixture) -> Results:
    x, w, _, g = inputs(case)
    results = exact(case)
    results["output"] = run(case, x, w, None, g)["output"]
    return finish(case, results)


def _bias_twice(case: Fixture) -> Results:
    x, w, b, g = inputs(case)
    results = exact(case)
    scale = case.metadata["scales"]["output"]
    results["output"] = run(case, x, w, b * scale, g)["output"]
    return finish(case, results)


def _swapped_groups(case: Fixture) -> Results:
    x, w, b, g = inputs(case)
    per_group = w.shape[0] // case.kwargs["groups"]
    order = np.arange(w.shape[0])
    order[:per_group], order[per_group : 2 * per_group] = (
        np.arange(per_group, 2 * per_group), np.arange(per_group))  # fmt: skip
    return finish(case, run(case, x, w[order], b[order] if b is not None else None, g))


def _no_conjugates(case: Fixture) -> Results:
    x, w, b, g = inputs(case)
    results = exact(case)
    results["grad_input"] = run(case, x, np.conj(w), b, g)["grad_input"]
    results["grad_weight"] = run(case, np.conj(x), w, b, g)["grad_weight"]
    return finish(case, results)


def _stride_dilation_swapped(case: Fixture) -> Results:
    """The forward indexes x at l d + k s: a stride-d, dilation-s correlation over the same
    padded input (zeros as far as it reaches)."""
    x, w, b, g = inputs(case)
    geo = uscale_ref.conv1d_geometry(x.shape, w.shape, **_shape_kwargs(case))
    results = exact(case)
    length = results["output"].shape[-1]
    reach = (length - 1) * geo.dilation + (geo.kernel_size - 1) * geo.stride + 1
    pad = [(0, 0)] * (x.ndim - 1) + [(geo.pad_left, max(0, reach - geo.pad_left - x.shape[-1]))]
    wrong = run(case, np.pad(x, pad), w, b, g, padding=0, stride=geo.dilation,
                dilation=geo.stride)["output"]  # fmt: skip
    results["output"] = wrong[..., :length] * (
        case.metadata["scales"]["output"]
        / uscale_ref.conv1d_scales(np.pad(x, pad).shape, w.shape, padding=0, stride=geo.dilation,
                                   dilation=geo.stride, groups=geo.groups,
                                   constraint=case.kwargs["constraint"],
                                   scale_power=case.kwargs["scale_power"]).output
    )  # fmt: skip
    return finish(case, results)


def _other_scales(**changes: Any) -> Callable[[Fixture], Results]:
    def make(case: Fixture) -> Results:
        return finish(case, run(case, *inputs(case), **changes))

    return make


def _scale_power_swapped(case: Fixture) -> Results:
    p = tuple(case.kwargs["scale_power"])
    return _other_scales(scale_power=(p[1], p[0], p[2]))(case)


def _first_item_bias(case: Fixture) -> Results:
    x, w, b, g = inputs(case)
    results = exact(case)
    one = run(case, x[:1], w, b, g[:1])
    results["grad_bias"] = one["grad_bias"] * _item_scale(case)
    return finish(case, results)


def _changes(case: Fixture, **changes: Any) -> bool:
    """Whether these arguments change any scale of the case."""
    x, w = case.inputs["input"], case.inputs["weight"]
    right = uscale_ref.conv1d_scales(x.shape, w.shape, **case.kwargs)
    wrong = uscale_ref.conv1d_scales(x.shape, w.shape, **{**case.kwargs, **changes})
    return any(abs(a / b - 1) > 1e-6 for a, b in zip(right, wrong, strict=True))


def _has(argument: str, value: Any = None) -> Callable[[Fixture], bool]:
    def needs(case: Fixture) -> bool:
        given = case.kwargs[argument]
        return given != value if value is not None else bool(given)

    return needs


def _batched(case: Fixture) -> bool:
    return case.inputs["input"].ndim == 3 and case.inputs["input"].shape[0] > 1


def _biased(case: Fixture) -> bool:
    return case.inputs["bias"] is not None


ENTRIES: list[Entry] = [
    Entry("running sums rounded to bfloat16", WIDE, _running(8),
          ("8 significant bits", "bfloat16")),
    Entry("running sums rounded to float16 (11 bits)", WIDE, _running(11),
          ("11 significant bits", "float16")),
    Entry("a 14-bit accumulator (FP8 tensor cores without promotion)", ("float32",),
          _running(14), ("14 significant bits",)),
    Entry("a 13-bit accumulator", ("float32",), _running(13), ("13 significant bits",)),
    Entry("grad_weight summed in bfloat16 over the batch", ("float32",),
          _batch_sum_in("bfloat16"), ("grad_weight", "8 significant bits"), _batched),
    Entry("grad_bias summed in bfloat16 (a running sum)", ("bfloat16",),
          _bias_sum_in("bfloat16"), ("grad_bias: summed in bfloat16",), _biased),
    Entry("batch item 1 off by 1e-3", EVERY,
          _scaled_part("output", lambda a: (1,), 1 + 1e-3), ("output at n = 1",),
          _batched, 1e-3, ("bfloat16", "float16")),
    Entry("grad_weight tap 4 off by 1e-2", EVERY,
          _scaled_part("grad_weight", lambda a: (..., 4), 1 + 1e-2),
          ("grad_weight at k = 4",), lambda case: case.inputs["weight"].shape[-1] > 4, 1e-2),
    Entry("output channels 64..127 off by 3e-4 (a tile of channels)", WIDE,
          _scaled_part("output", lambda a: (..., slice(64, 128), slice(None)), 1 + 3e-4),
          ("output at o in 64..127",), lambda case: case.inputs["weight"].shape[0] > 128, 3e-4),
    Entry("one length tile wrong (positions 128..191 off by 1e-3)", EVERY,
          _scaled_part("output", lambda a: (..., slice(128, 192)), 1 + 1e-3),
          ("output at l in 128..191",), lambda case: case.expected["output"].shape[-1] > 256,
          1e-3, ("bfloat16", "float16")),
    Entry("the padding filled with edge values (wrong near the borders)", EVERY, _borders,
          ("near the borders",), _has("padding", 0)),
    Entry("the last tap dropped", EVERY, _dropped_last_tap, ("the last tap left out",)),
    Entry("the bias left out", EVERY, _no_bias, ("the bias left out",), _biased),
    Entry("the bias scaled twice", EVERY, _bias_twice, ("the bias scaled twice",), _biased),
    Entry("the weight blocks of groups 0 and 1 swapped", EVERY, _swapped_groups,
          ("weight blocks of groups 0 and 1 swapped",), lambda case: case.kwargs["groups"] > 1),
    Entry("no complex conjugate in either gradient", ("complex64", "complex128"),
          _no_conjugates, ("conjugate in dgrad", "conjugate in wgrad")),
    Entry("stride and dilation swapped in the forward", EVERY, _stride_dilation_swapped,
          ("stride and dilation swapped",),
          lambda case: case.kwargs["stride"] != case.kwargs["dilation"]),
    Entry("the constraint ignored (None)", EVERY, _other_scales(constraint=None),
          ("a different constraint: None",), lambda case: _changes(case, constraint=None)),
    Entry("scale_power misapplied (output's and grad_input's swapped)", EVERY,
          _scale_power_swapped, ("scale_power misapplied",),
          lambda case: len(set(case.kwargs["scale_power"][:2])) == 2),
    Entry("grad_bias over the first batch item only", EVERY, _first_item_bias,
          ("first batch item only",), lambda case: _batched(case) and _biased(case)),
    Entry("inputs rounded to TF32", ("float32", "complex64"), _rounded_inputs("tf32"),
          ("TF32",)),
    Entry("inputs rounded to bfloat16", ("float32", "complex64", "float16", "float64"),
          _rounded_inputs("bfloat16"), ("inputs rounded to bfloat16",)),
    Entry("inputs rounded to float16", ("float32", "complex64", "float64"),
          _rounded_inputs("float16"), ("float16",)),
    Entry("inputs rounded to FP8 E4M3", ("float32", "bfloat16", "float16"),
          _rounded_inputs("float8_e4m3fn"), ("E4M3",)),
    Entry("output scale off by 1e-3, before the one rounding", ("bfloat16", "float16"),
          _scaled_part("output", lambda a: (...,), 1 + 1e-3),
          ("output: a scale off by a factor 1 + ",), factor=1e-3, subtle=("bfloat16", "float16")),
    Entry("output scale off by 1e-5", ("float32", "complex64"),
          _scaled_part("output", lambda a: (...,), 1 + 1e-5),
          ("output: a scale off by a factor 1 + ",), factor=1e-5),
]  # fmt: skip
