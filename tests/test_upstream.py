"""Conformance with upstream ``unit_scaling.functional.conv1d`` + PyTorch autograd.

Skipped unless torch and unit-scaling are installed (``pip install -e .[upstream]``).
Upstream raises on string and tuple padding (a bug we do not copy), so for
those cases upstream runs on the explicitly zero-padded input with
``padding=0`` and int arguments, which is the same computation; autograd
through ``F.pad`` crops the gradient back to the unpadded input.
"""

from __future__ import annotations

import itertools

import cases
import numpy as np
import pytest
from tolerance import assert_within_rounding, rounding_bound, unit_roundoff

torch = pytest.importorskip("torch")
unit_scaling_functional = pytest.importorskip("unit_scaling.functional")

pytestmark = pytest.mark.upstream

UPSTREAM_DTYPES = ["float16", "float32", "float64", "complex64", "complex128"]
CONSTRAINTS = [None, "gmean", "hmean", "amean", "to_output_scale", "to_grad_input_scale"]


def _unwrap(value):
    return value[0] if isinstance(value, tuple) else value


def run_upstream(x, w, b, g, kwargs, constraint, scale_power):
    """Forward and autograd gradients from upstream, as NumPy arrays."""
    geo = cases.geometry({"K": w.shape[-1], **kwargs})
    tensors = [torch.tensor(a, requires_grad=True) if a is not None else None for a in (x, w, b)]
    xt, wt, bt = tensors
    native_padding = isinstance(kwargs.get("padding", 0), int)
    if native_padding:
        source, padding = xt, kwargs.get("padding", 0)
    else:
        source = torch.nn.functional.pad(xt, (geo.pad_left, geo.pad_right))
        padding = 0
    y = unit_scaling_functional.conv1d(
        source,
        wt,
        bt,
        stride=_unwrap(kwargs.get("stride", 1)),
        padding=padding,
        dilation=_unwrap(kwargs.get("dilation", 1)),
        groups=kwargs.get("groups", 1),
        constraint=constraint,
        scale_power=scale_power,
    )
    y.backward(torch.tensor(g))
    results = {"output": y, "grad_input": xt.grad, "grad_weight": wt.grad}
    if bt is not None:
        results["grad_bias"] = bt.grad
    return {k: v.detach().resolve_conj().numpy() for k, v in results.items()}, native_padding


GRID = [
    pytest.param(case_id, dtype, constraint, id=f"{case_id}-{dtype}-{constraint}")
    for case_id, dtype, constraint in itertools.product(cases.CASES, UPSTREAM_DTYPES, CONSTRAINTS)
]


@pytest.mark.parametrize(("case_id", "dtype", "constraint"), GRID)
def test_matches_upstream(impl, case_id, dtype, constraint):
    import reference

    case = cases.spec(case_id)
    kwargs = cases.conv_kwargs(case)
    scale_power = (0.5, 0.5, 0.5) if constraint != "amean" else (0.75, 0.25, 1.0)
    x, w, b, g = cases.make_inputs(case_id, dtype)
    theirs, _ = run_upstream(x, w, b, g, kwargs, constraint, scale_power)
    ours = {
        "output": impl.conv1d(x, w, b, **kwargs, constraint=constraint, scale_power=scale_power)
    }
    ours.update(
        impl.conv1d_backward(
            g, x, w, b, **kwargs, constraint=constraint, scale_power=scale_power
        )._asdict()
    )
    expected = reference.exact(x, w, b, g, cases.geometry(case), constraint, scale_power)
    assert set(theirs) == set(expected)
    for name, (_, magnitude, terms) in expected.items():
        assert theirs[name].dtype == ours[name].dtype == np.dtype(dtype), name
        # Each side rounds within its own bound; upstream also accumulates in
        # the input dtype and rounds the backward scale to it (one more u).
        ours_bound = rounding_bound(dtype, magnitude, terms)
        complex_factor = 2.0 if np.dtype(dtype).kind == "c" else 1.0
        theirs_bound = complex_factor * (terms + 3) * unit_roundoff(dtype) * magnitude
        error = np.abs(ours[name].astype(np.complex128) - theirs[name].astype(np.complex128))
        worst = np.argmax(error - (ours_bound + theirs_bound))
        assert np.all(error <= ours_bound + theirs_bound), (
            f"{name}: |ours - upstream| = {error.flat[worst]:.3g} > "
            f"{(ours_bound + theirs_bound).flat[worst]:.3g}"
        )


def test_upstream_really_fails_on_string_padding():
    """Documents the upstream bug we route around above; if upstream fixes it, revisit."""
    x = torch.randn(1, 2, 8)
    w = torch.randn(3, 2, 3)
    with pytest.raises(TypeError):
        unit_scaling_functional.conv1d(x, w, padding="same")


@pytest.mark.parametrize("dtype", ["float32", "complex64"])
def test_torch_tensors_in_and_out(impl, dtype):
    """uscale_ref on torch tensors (through array-api-compat) returns torch tensors of the
    input dtype, within rounding of the exact result, as upstream does."""
    import reference

    x, w, b, g = cases.make_inputs("everything", dtype)
    case = cases.spec("everything")
    kwargs = cases.conv_kwargs(case)
    expected = reference.exact(x, w, b, g, cases.geometry(case))
    theirs, _ = run_upstream(x, w, b, g, kwargs, "to_output_scale", (0.5, 0.5, 0.5))
    y = impl.conv1d(torch.tensor(x), torch.tensor(w), torch.tensor(b), **kwargs)
    assert isinstance(y, torch.Tensor) and y.dtype == getattr(torch, dtype)
    exact, magnitude, terms = expected["output"]
    assert_within_rounding(y.resolve_conj().numpy(), exact, magnitude, dtype, terms)
    assert_within_rounding(theirs["output"], exact, magnitude, dtype, terms)


NON_FINITE = [
    pytest.param(where, value, id=f"{name}-{where}")
    for where in ("input", "weight", "bias", "grad_output")
    for name, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf))
]


@pytest.mark.parametrize(("where", "value"), NON_FINITE)
@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_non_finite_values_land_where_upstream_puts_them(impl, case_id, where, value):
    """NaN and inf in any argument: the same NaN, +inf and -inf positions as PyTorch autograd.

    PyTorch multiplies the forward's padding zeros (an inf weight facing
    the padding gives NaN) but its dgrad never multiplies by a zero it
    inserted or padded; the definition in uscale_ref.textbook does the same.
    """
    case = cases.spec(case_id)
    kwargs = cases.conv_kwargs(case)
    x, w, b, g = cases.make_inputs(case_id, "float64")
    arrays = {"input": x, "weight": w, "bias": b, "grad_output": g}
    flat = arrays[where].reshape(-1)
    flat[len(flat) // 3] = value
    if where in ("input", "grad_output"):
        arrays[where][..., 0, 0] = value
    with np.errstate(all="ignore"):
        theirs, _ = run_upstream(x, w, b, g, kwargs, None, (0.5, 0.5, 0.5))
        ours = {"output": impl.conv1d(x, w, b, **kwargs, constraint=None)}
        ours.update(impl.conv1d_backward(g, x, w, b, **kwargs, constraint=None)._asdict())
    for name, expected in theirs.items():
        for test in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(
                test(ours[name]), test(expected), err_msg=f"{name}: {test.__name__}"
            )
