"""conv1d and conv1d_backward against the plain-loop definitions, on every backend and dtype."""

from __future__ import annotations

import functools

import cases
import numpy as np
import oracles
import pytest
import reference
from tolerance import assert_within_rounding

import uscale_ref


@functools.cache
def _expected(case_id: str, dtype: str, bias: bool):
    x, w, b, g = cases.make_inputs(case_id, dtype, bias)
    geo = cases.geometry(cases.spec(case_id))
    return (x, w, b, g), reference.exact(x, w, b, g, geo)


def _run(backend, case_id, dtype, bias, impl=uscale_ref):
    if not backend.supports(dtype):
        pytest.skip(f"{backend.name} has no {dtype}")
    (x, w, b, g), expected = _expected(case_id, dtype, bias)
    kwargs = cases.conv_kwargs(cases.spec(case_id))
    xs, ws, gs = (backend.asarray(a) for a in (x, w, g))
    bs = None if b is None else backend.asarray(b)
    output = impl.conv1d(xs, ws, bs, **kwargs)
    grads = impl.conv1d_backward(gs, xs, ws, bs, **kwargs)
    return (xs, output, grads), expected


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("dtype", cases.DTYPES)
@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_matches_loop_definition(impl, backend, case_id, dtype, bias):
    (xs, output, grads), expected = _run(backend, case_id, dtype, bias, impl)
    results = {"output": output, "grad_input": grads.grad_input, "grad_weight": grads.grad_weight}
    if bias:
        results["grad_bias"] = grads.grad_bias
    else:
        assert grads.grad_bias is None
    assert set(results) == set(expected)
    for name, value in results.items():
        # Results keep the input's library, device and dtype.
        assert value.dtype == xs.dtype, name
        assert uscale_ref._backend.device_of(value) == uscale_ref._backend.device_of(xs), name
        exact, magnitude, terms = expected[name]
        assert_within_rounding(
            backend.to_numpy(value), exact, magnitude, dtype, terms, what=f"{case_id} {name}"
        )


@pytest.mark.parametrize("case_id", ["basic", "everything", "unbatched_grouped_same"])
@pytest.mark.parametrize(
    "constraint", [None, "", "gmean", "hmean", "amean", "to_output_scale", "to_grad_input_scale"]
)
@pytest.mark.parametrize("scale_power", [(0.5, 0.5, 0.5), (1.0, 0.25, 0.75), (0.0, 0.0, 0.0)])
def test_constraints_and_scale_power(impl, case_id, constraint, scale_power):
    x, w, b, g = cases.make_inputs(case_id, "float64")
    case = cases.spec(case_id)
    kwargs = cases.conv_kwargs(case)
    expected = reference.exact(x, w, b, g, cases.geometry(case), constraint, scale_power)
    output = impl.conv1d(x, w, b, **kwargs, constraint=constraint, scale_power=scale_power)
    grads = impl.conv1d_backward(
        g, x, w, b, **kwargs, constraint=constraint, scale_power=scale_power
    )
    for name, value in [("output", output), *zip(grads._fields, grads, strict=True)]:
        exact, magnitude, terms = expected[name]
        assert_within_rounding(value, exact, magnitude, np.float64, terms, what=name)


def test_unbatched_equals_batch_of_one(impl, backend):
    x, w, b, g = cases.make_inputs("unbatched", "float32")
    kwargs = cases.conv_kwargs(cases.spec("unbatched"))
    xs, ws, bs, gs = (backend.asarray(a) for a in (x, w, b, g))
    single = impl.conv1d(xs, ws, bs, **kwargs)
    batch = impl.conv1d(backend.asarray(x[None]), ws, bs, **kwargs)
    np.testing.assert_array_equal(backend.to_numpy(single), backend.to_numpy(batch)[0])
    grads = impl.conv1d_backward(gs, xs, ws, bs, **kwargs)
    assert tuple(grads.grad_input.shape) == x.shape


@pytest.mark.parametrize("workspace_bytes", [1, 3000, 40_000])
@pytest.mark.parametrize("dtype", ["float16", "float32", "complex128"])
@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_blocked_paths_match_loop_definition(case_id, dtype, workspace_bytes):
    """Small workspaces force many blocks (down to length 1): every block edge is exercised.

    (Every path of the kernels, forced through their plan, is held to the
    textbook in test_kernels.py.)
    """
    from uscale_ref.config import workspace

    with workspace(workspace_bytes):
        (_, output, grads), expected = _run(conftest_numpy(), case_id, dtype, True)
    results = {"output": output, **grads._asdict()}
    for name, (exact, magnitude, terms) in expected.items():
        assert_within_rounding(results[name], exact, magnitude, dtype, terms, what=name)


@pytest.mark.parametrize(
    "case_id", ["basic", "stride2_pad1", "depthwise", "depthwise_k5", "everything"]
)
def test_blocks_are_joined_on_every_backend(backend, case_id):
    """Many blocks and batch chunks, joined in place (NumPy, torch, strict) or by concat (JAX)."""
    from uscale_ref.config import workspace

    with workspace(2000):
        (_, output, grads), expected = _run(backend, case_id, "float32", True)
    results = {"output": output, **grads._asdict()}
    for name, (exact, magnitude, terms) in expected.items():
        assert_within_rounding(
            backend.to_numpy(results[name]), exact, magnitude, "float32", terms, what=name
        )


def conftest_numpy():
    from conftest import Backend

    return Backend("numpy", np)


def test_gpu_arrays_are_planned_for_a_gpu(backend):
    """CuPy arrays (torch and JAX ones too, on a GPU) get the accelerator's plan; host ones not."""
    x = backend.asarray(np.ones((2, 4, 16), np.float32))
    assert uscale_ref._backend.on_accelerator(x) == (backend.name == "cupy")


@pytest.fixture
def on_a_gpu(monkeypatch):
    """Plans as for arrays on a GPU (whole blocks, no band matrices, wgrad stacked), run here."""
    from uscale_ref import kernels

    monkeypatch.setattr(kernels, "on_accelerator", lambda x: True)
    kernels._cached_plan.cache_clear()
    yield
    kernels._cached_plan.cache_clear()


@pytest.mark.parametrize("dtype", ["float16", "float32", "complex128"])
@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_accelerator_plans_match_loop_definition(on_a_gpu, case_id, dtype):
    from uscale_ref import kernels
    from uscale_ref.geometry import conv1d_geometry

    (xs, output, grads), expected = _run(conftest_numpy(), case_id, dtype, True)
    w = _expected(case_id, dtype, True)[0][1]
    geometry = conv1d_geometry(xs.shape, w.shape, **cases.conv_kwargs(cases.spec(case_id)))
    plan = kernels.plan_for("weight_grad", np, geometry, np.float32, like=xs)
    assert plan.path == "stacked" and not plan.cache_blocked  # the GPU's plan ran
    results = {"output": output, "grad_input": grads.grad_input, "grad_weight": grads.grad_weight}
    results["grad_bias"] = grads.grad_bias
    for name, value in results.items():
        exact, magnitude, terms = expected[name]
        assert_within_rounding(value, exact, magnitude, dtype, terms, what=f"{case_id} {name}")


@pytest.mark.parametrize("device", ["host", "gpu"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["inf", "-inf", "nan"])
@pytest.mark.parametrize("case_id", ["basic", "depthwise", "depthwise_k5", "depthwise_wide_span"])
def test_non_finite_values_reach_only_their_receptive_field(request, case_id, bad, device):
    """An inf or NaN in the input (or grad_output) spoils exactly the outputs that read it.

    The band-matrix path multiplies by structural zeros (0 * inf = NaN) and must
    fall back to the direct sums when that could happen; the plans for a GPU
    take other paths, with whole blocks.
    """
    from uscale_ref import primitives

    if device == "gpu":
        request.getfixturevalue("on_a_gpu")

    x, w, _, g = cases.make_inputs(case_id, "float64", bias=False)
    case = cases.spec(case_id)
    kwargs = cases.conv_kwargs(case)
    geo = cases.geometry(case)
    x, g = x.copy(), g.copy()
    x[..., 0, x.shape[-1] // 2] = bad
    g[..., -1, g.shape[-1] // 3] = bad
    pairs = [
        (primitives.correlate(x, w, **kwargs), oracles.loop_forward(x, w, None, geo)),
        (
            primitives.correlate_input_grad(
                g, w, input_length=case["L"], batched=case["N"] is not None, **kwargs
            ),
            oracles.loop_input_grad(g if g.ndim == 3 else g[None], w, case["L"], geo),
        ),
    ]
    for ours, expected in pairs:
        expected = expected.reshape(ours.shape)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
        np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(expected))
        np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(expected))
        finite = np.isfinite(expected)
        assert 0 < finite.sum() < finite.size
        np.testing.assert_allclose(ours[finite], expected[finite], rtol=1e-12, atol=1e-12)
