"""scipy.signal, finite differences and the adjoint identities as oracles."""

from __future__ import annotations

import cases
import numpy as np
import oracles
import pytest
import reference
from tolerance import assert_within_rounding

import uscale_ref


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_forward_matches_scipy(impl, case_id, dtype):
    case = cases.spec(case_id)
    x, w, _, _ = cases.make_inputs(case_id, dtype, bias=False)
    batched = x.ndim == 3
    geo = cases.geometry(case)
    expected = oracles.scipy_forward(x if batched else x[None], w, geo)
    expected = expected if batched else expected[0]
    got = impl.correlate(x, w, **cases.conv_kwargs(case))
    magnitude = np.abs(impl.correlate(np.abs(x), np.abs(w), **cases.conv_kwargs(case)))
    # scipy's own sums round too: allow both computations' rounding.
    terms = 2 * (x.shape[-2] // case.get("groups", 1)) * case["K"]
    assert_within_rounding(got, expected, magnitude, dtype, terms, what=case_id)


@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_loop_oracle_agrees_with_scipy(case_id):
    """The loop oracle is itself checked against scipy, so the two cannot share a mistake."""
    case = cases.spec(case_id)
    x, w, _, _ = cases.make_inputs(case_id, "complex128", bias=False)
    x = x if x.ndim == 3 else x[None]
    geo = cases.geometry(case)
    np.testing.assert_allclose(
        oracles.loop_forward(x, w, None, geo),
        oracles.scipy_forward(x, w, geo),
        rtol=1e-12,
        atol=1e-12,
    )


def _loss(impl, x, w, b, g, kwargs):
    """A real loss whose gradient w.r.t. the output is g: Re sum(conj(g) * y)."""
    y = impl.conv1d(x, w, b, **kwargs)
    return float(np.real(np.vdot(g, y)))


def _finite_difference(loss, array, step):
    """Central differences of ``loss`` in every real (and imaginary) direction of ``array``.

    For complex entries this builds dL/dRe + i dL/dIm, which is what PyTorch
    autograd returns (twice the conjugate Wirtinger derivative of a real L).
    """
    grad = np.zeros_like(array)
    directions = [1.0, 1j] if np.iscomplexobj(array) else [1.0]
    for index in np.ndindex(array.shape):
        for direction in directions:
            plus, minus = array.copy(), array.copy()
            plus[index] += step * direction
            minus[index] -= step * direction
            slope = (loss(plus) - loss(minus)) / (2 * step)
            grad[index] += slope * direction
    return grad


@pytest.mark.parametrize("dtype", ["float64", "complex128"])
@pytest.mark.parametrize(
    "case_id",
    [
        "basic",
        "everything",
        "same_even_kernel_odd_dilation",
        "unbatched_grouped_same",
        "stride_gt_kernel",
        "depthwise",
    ],
)
def test_gradients_match_finite_differences(impl, case_id, dtype):
    case = cases.spec(case_id)
    kwargs = cases.conv_kwargs(case)
    x, w, b, g = cases.make_inputs(case_id, dtype)
    grads = impl.conv1d_backward(g, x, w, b, **kwargs)
    # The loss is linear in each argument, so central differences are exact
    # up to rounding for any step; a unit step keeps that rounding small.
    numeric = {
        "grad_input": _finite_difference(lambda v: _loss(impl, v, w, b, g, kwargs), x, 1.0),
        "grad_weight": _finite_difference(lambda v: _loss(impl, x, v, b, g, kwargs), w, 1.0),
        "grad_bias": _finite_difference(lambda v: _loss(impl, x, w, v, g, kwargs), b, 1.0),
    }
    # Finite differences see the forward scale; the backward applies its own
    # scale instead (the point of unit scaling), so convert one into the other.
    scales = uscale_ref.conv1d_scales(x.shape, w.shape, **kwargs)
    for name, value in numeric.items():
        rescaled = value / scales.output * getattr(scales, name)
        np.testing.assert_allclose(
            getattr(grads, name), rescaled, rtol=1e-9, atol=1e-9, err_msg=name
        )


def _vdot(a, b):
    """<a, b> = sum(conj(a) * b) over all elements, in the backend's own arithmetic."""
    return complex(np.vdot(a.ravel(), b.ravel()))


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_adjoint_identities(impl, backend, case_id, dtype):
    """<g, conv(x, w)> == <dgrad(g, w), x> == <wgrad(g, x), w> for the unscaled primitives."""
    if not backend.supports(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    case = cases.spec(case_id)
    kwargs = cases.conv_kwargs(case)
    x, w, _, g = cases.make_inputs(case_id, dtype, bias=False)
    xs, ws, gs = (backend.asarray(a) for a in (x, w, g))
    y = backend.to_numpy(impl.correlate(xs, ws, **kwargs))
    grad_x = backend.to_numpy(
        impl.correlate_input_grad(gs, ws, input_length=case["L"], batched=x.ndim == 3, **kwargs)
    )
    grad_w = backend.to_numpy(impl.correlate_weight_grad(gs, xs, kernel_size=case["K"], **kwargs))
    wide = oracles.widen
    forward_side = _vdot(wide(g), wide(y))
    input_side = _vdot(wide(grad_x), wide(x))
    weight_side = _vdot(wide(grad_w), wide(w))
    scale = float(np.abs(wide(g)).ravel() @ np.abs(wide(y)).ravel()) + 1.0
    eps = np.finfo(dtype).eps
    terms = x.shape[-2] * case["K"] * max(g.shape[-1], 1) * (x.shape[0] if x.ndim == 3 else 1)
    assert abs(forward_side - input_side) <= 4 * terms * eps * scale
    assert abs(forward_side - weight_side) <= 4 * terms * eps * scale


def test_scaled_adjoint_identity_with_scales_divided_out(impl):
    """The public scaled API obeys the identity once each side's scale is divided out."""
    case = cases.spec("everything")
    kwargs = cases.conv_kwargs(case)
    x, w, _, g = cases.make_inputs("everything", "complex128", bias=False)
    scales = uscale_ref.conv1d_scales(x.shape, w.shape, **kwargs, constraint=None)
    y = impl.conv1d(x, w, **kwargs, constraint=None) / scales.output
    grads = impl.conv1d_backward(g, x, w, **kwargs, constraint=None)
    reference_scales = reference.reference_scales(
        x.shape[0],
        g.shape[-1],
        w.shape[0],
        w.shape[1],
        w.shape[2],
        case["stride"],
        case["groups"],
        None,
    )
    assert scales == pytest.approx(reference_scales, rel=1e-15)
    lhs = _vdot(g, y)
    assert lhs == pytest.approx(_vdot(grads.grad_input / scales.grad_input, x), rel=1e-12)
    assert lhs == pytest.approx(_vdot(grads.grad_weight / scales.grad_weight, w), rel=1e-12)


@pytest.mark.parametrize("case_id", ["basic", "depthwise_k5", "stride2_pad1"])
def test_complex_imaginary_parts_keep_their_own_accuracy(impl, case_id):
    """Imaginary parts 1e-4 times the real parts: each part is rounded on its own scale.

    Gauss's three-product complex multiply would cancel the large real terms
    inside the small imaginary part (benchmarks/complex_products.py shows
    torch's CPU convolution losing ~1e-3 relative there); four products do not.
    """
    rng = np.random.default_rng(7)
    case = cases.spec(case_id)
    kwargs = cases.conv_kwargs(case)
    groups = case.get("groups", 1)

    def draw(*shape):
        z = rng.standard_normal(shape) + 1e-4j * rng.standard_normal(shape)
        return z.astype(np.complex64)

    x = draw(case["N"], case["C"], case["L"])
    w = draw(case["O"], case["C"] // groups, case["K"])
    ours = impl.correlate(x, w, **kwargs).astype(np.complex128)
    exact = oracles.loop_forward(x, w, None, cases.geometry(case))
    for part in (np.real, np.imag):
        error = np.max(np.abs(part(ours) - part(exact))) / np.max(np.abs(part(exact)))
        assert error < 1e-5, (part.__name__, error)
