"""bfloat16 and complex32: accumulated wide, rounded once; float8 arrays refused by name."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import uscale_ref
from uscale_ref import golden

KWARGS = {"stride": 2, "padding": 1, "groups": 2}


def _arrays(complex_=False):
    rng = np.random.default_rng(5)
    shapes = [(2, 8, 30), (6, 4, 3), (6,)]
    arrays = [rng.standard_normal(s) for s in shapes]
    if complex_:
        arrays = [a + 1j * rng.standard_normal(a.shape) for a in arrays]
    return arrays


def _exact(x, w, b, g):
    """float64 / complex128 results of uscale_ref (the loop oracles hold it to the definition)."""
    y = uscale_ref.conv1d(x, w, b, **KWARGS)
    grads = uscale_ref.conv1d_backward(g, x, w, b, **KWARGS)
    magnitude_y = uscale_ref.conv1d(abs(x), abs(w), abs(b), **KWARGS)
    return {"output": y, **grads._asdict()}, magnitude_y


def _bf16_ulp(values):
    """The spacing of bfloat16 numbers at |values| (normal range)."""
    exponent = np.floor(np.log2(np.maximum(np.abs(values), 2.0**-126)))
    return 2.0 ** (exponent - 7)


def _check_bf16(results, x, w, b, g):
    exact, magnitude = _exact(x, w, b, g)
    output = results["output"]
    # float32 accumulation of 12 terms, then one rounding to bfloat16.
    error = np.abs(output - exact["output"])
    bound = 0.5 * _bf16_ulp(exact["output"]) + 16 * 2.0**-24 * magnitude
    assert np.all(error <= bound), float(np.max(error / bound))
    for name in ("grad_input", "grad_weight", "grad_bias"):
        assert np.allclose(results[name], exact[name], rtol=2**-7, atol=2**-7 * 8)


def test_torch_bfloat16_is_correctly_rounded_from_float32():
    torch = pytest.importorskip("torch")
    x, w, b = (a.astype(np.float32) for a in _arrays())
    tensors = [torch.tensor(a).to(torch.bfloat16) for a in (x, w, b)]
    x, w, b = (t.float().numpy().astype(np.float64) for t in tensors)  # the bf16 values
    y = uscale_ref.conv1d(*tensors, **KWARGS)
    g = torch.ones_like(y)
    grads = uscale_ref.conv1d_backward(g, *tensors, **KWARGS)
    assert y.dtype == grads.grad_input.dtype == grads.grad_weight.dtype == torch.bfloat16
    # Rounded once from the float32 computation:
    float32 = uscale_ref.conv1d(*(t.float() for t in tensors), **KWARGS)
    assert torch.equal(y, float32.to(torch.bfloat16))
    results = {
        "output": y.float().numpy(),
        **{k: v.float().numpy() for k, v in grads._asdict().items()},
    }
    _check_bf16(results, x, w, b, g.float().numpy().astype(np.float64))


def test_numpy_bfloat16_from_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x, w, b = (a.astype(ml_dtypes.bfloat16) for a in _arrays())
    y = uscale_ref.conv1d(x, w, b, **KWARGS)
    assert y.dtype == ml_dtypes.bfloat16
    assert uscale_ref.textbook.conv1d(x, w, b, **KWARGS).dtype == ml_dtypes.bfloat16
    g = np.ones(y.shape, dtype=ml_dtypes.bfloat16)
    grads = uscale_ref.conv1d_backward(g, x, w, b, **KWARGS)
    results = {
        "output": y.astype(np.float64),
        **{k: v.astype(np.float64) for k, v in grads._asdict().items()},
    }
    wide = [a.astype(np.float64) for a in (x, w, b, g)]
    _check_bf16(results, *wide)


def test_torch_complex32_matches_upstream_in_complex128():
    torch = pytest.importorskip("torch")
    upstream = pytest.importorskip("unit_scaling.functional")
    warnings.filterwarnings("ignore", "ComplexHalf support is experimental")
    x, w, b = (torch.tensor(a.astype(np.complex64)).to(torch.complex32) for a in _arrays(True))
    y = uscale_ref.conv1d(x, w, b, **KWARGS)
    g = torch.ones_like(y)
    grads = uscale_ref.conv1d_backward(g, x, w, b, **KWARGS)
    assert y.dtype == grads.grad_input.dtype == grads.grad_bias.dtype == torch.complex32
    wide = [t.to(torch.complex128).detach().requires_grad_() for t in (x, w, b)]
    theirs = upstream.conv1d(*wide, **KWARGS)
    theirs.backward(g.to(torch.complex128))
    pairs = [(y, theirs), (grads.grad_input, wide[0].grad), (grads.grad_weight, wide[1].grad)]
    for ours, exact in pairs:
        ours = ours.to(torch.complex128).numpy()
        exact = exact.detach().resolve_conj().numpy()
        # one rounding per part to float16, after a complex64 computation
        bound = 2.0**-11 * (abs(exact.real) + abs(exact.imag)) + 2.0**-20 * (1 + abs(exact))
        assert np.all(abs(ours - exact) <= bound), float(np.max(abs(ours - exact) / bound))


@pytest.mark.parametrize("library", ["torch", "numpy"])
def test_float8_arrays_are_refused_by_name(library):
    if library == "torch":
        torch = pytest.importorskip("torch")
        x = torch.ones(2, 4, 8).to(torch.float8_e4m3fn)
    else:
        ml_dtypes = pytest.importorskip("ml_dtypes")
        x = np.ones((2, 4, 8), dtype=ml_dtypes.float8_e4m3fn)
    for implementation in (uscale_ref, uscale_ref.textbook):
        with pytest.raises(TypeError, match=r"float16, float32, float64, complex64 or complex128"):
            implementation.conv1d(x, x[:3, :, :3])


# -- golden cases in low precision -------------------------------------------------------


def _loop_results(case):
    """float64 / complex128 results from the loop definitions, for a golden case."""
    import oracles
    import reference

    x, w, b, g = (case.inputs[n] for n in ("input", "weight", "bias", "grad_output"))
    batched = x.ndim == 3
    x, g = (a if batched else a[None] for a in (x, g))
    kwargs = case.kwargs
    shape_arguments = ("stride", "padding", "dilation", "groups")
    geo = oracles.Geometry.resolve(w.shape[-1], **{k: kwargs[k] for k in shape_arguments})
    exact = reference.exact(x, w, b, g, geo, kwargs["constraint"], kwargs["scale_power"])
    values = {name: value for name, (value, _, _) in exact.items()}
    if not batched:
        values = {k: (v[0] if k in ("output", "grad_input") else v) for k, v in values.items()}
    return values


@pytest.mark.parametrize("case_id", golden.cases(dtype="bfloat16"))
def test_bfloat16_cases_are_correctly_rounded(case_id):
    from uscale_ref.formats import round_to, spacing

    case = golden.load(case_id)
    for name in ("input", "weight", "grad_output"):
        values = case.inputs[name]
        np.testing.assert_array_equal(round_to(values, "bfloat16"), values)
    exact = _loop_results(case)
    for name, expected in case.expected.items():
        assert expected.dtype == np.float32
        np.testing.assert_array_equal(round_to(expected, "bfloat16"), expected)
        error = np.abs(expected.astype(np.float64) - exact[name])
        # correctly rounded: within half a bfloat16 spacing (plus the loops' own rounding)
        assert np.all(error <= spacing(exact[name], "bfloat16") / 2 * (1 + 2**-20)), name


@pytest.mark.parametrize("case_id", ["c32_k3", "c32_o4_dw_p1_k3", "c32_ub_s2_d2_k3"])
def test_complex32_cases_hold_float16_parts(case_id):
    from uscale_ref.formats import round_to, spacing

    case = golden.load(case_id)
    exact = _loop_results(case)
    for name, value in [*case.inputs.items(), *case.expected.items()]:
        if value is None:
            continue
        assert value.dtype == np.complex64
        for part in (value.real, value.imag):
            np.testing.assert_array_equal(round_to(part.copy(), "float16"), part)
        if name in exact:
            for ours, truth in ((value.real, exact[name].real), (value.imag, exact[name].imag)):
                error = np.abs(ours.astype(np.float64) - truth)
                assert np.all(error <= spacing(truth, "float16") / 2 * (1 + 2**-20)), name


@pytest.mark.parametrize("case_id", ["f32_fp8_k3", "f32_fp8_g2_s2_d2_p1_k4"])
def test_fp8_cases_have_fp8_inputs_and_float32_results(case_id):
    from uscale_ref.formats import round_to

    case = golden.load(case_id)
    assert case.formats == {
        "input": "float8_e4m3fn", "weight": "float8_e4m3fn", "grad_output": "float8_e5m2"
    }  # fmt: skip
    for name, format in case.formats.items():
        np.testing.assert_array_equal(round_to(case.inputs[name], format), case.inputs[name])
    exact = _loop_results(case)
    for name, expected in case.expected.items():
        assert expected.dtype == np.float32
        error = np.abs(expected.astype(np.float64) - exact[name])
        half_ulp = np.spacing(np.abs(exact[name]).astype(np.float32)).astype(np.float64) / 2
        assert np.all(error <= half_ulp * (1 + 2**-20)), name


def test_double_double_midpoints_round_by_the_low_part():
    """hi exactly half-way between two bfloat16 numbers: lo's sign decides, not ties-to-even."""
    from uscale_ref.exact import doubledouble as exact

    midpoint = np.array([1.0 + 2**-8, -(1.0 + 3 * 2**-8)])  # between 1 and 1 + 2**-7, etc.
    for lo, expected in ((1e-30, [1 + 2**-7, -(1 + 2 * 2**-7)]), (-1e-30, [1.0, -(1 + 2**-7)]),
                         (0.0, [1.0, -(1 + 2 * 2**-7)])):  # fmt: skip
        value = exact.DD(midpoint.copy(), np.full(2, lo) * np.sign(midpoint))
        np.testing.assert_array_equal(exact.round_to_format(value, "bfloat16"), expected)
