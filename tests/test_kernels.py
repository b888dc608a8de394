"""The fast kernels held to the textbook on every path of their plan, NaN and inf included.

Each kernel is run through :func:`uscale_ref.kernels.make_plan` with a forced
path and a tiny or an ample workspace (many blocks and batch chunks, or
one), on every case, against :mod:`uscale_ref.textbook`: the same NaN/inf
pattern and the same finite values to rounding.
"""

from __future__ import annotations

import functools
import itertools
import tracemalloc

import cases
import numpy as np
import oracles
import pytest

import uscale_ref
from uscale_ref import kernels, textbook
from uscale_ref.geometry import conv1d_geometry
from uscale_ref.kernels.plan import PATHS, valid_paths
from uscale_ref.tools import benchmark

WORKSPACES = (700, 2**30)
OPS = ("forward", "input_grad", "weight_grad")


def _poisoned(case_id, dtype, where, value):
    """The case's arrays, with ``value`` put into ``where`` (None: all finite), batched."""
    x, w, b, g = cases.make_inputs(case_id, dtype)
    if x.ndim == 2:  # the kernels and the textbook's sums take batched arrays
        x, g = x[None], g[None]
    arrays = {"input": x.copy(), "weight": w.copy(), "bias": b.copy(), "grad_output": g.copy()}
    if where is not None:
        target = arrays[where]
        flat = target.reshape(-1)
        flat[len(flat) // 3] = value  # one entry, away from the ends
        if where in ("input", "grad_output"):
            target[..., 0, 0] = value  # and one at an edge, where padding meets it
    return arrays


def _run_kernels(arrays, kwargs, path, workspace_bytes, eager=True):
    x, w, b, g = (arrays[k] for k in ("input", "weight", "bias", "grad_output"))
    geometry = conv1d_geometry(x.shape, w.shape, **kwargs)
    work = uscale_ref._backend.compute_dtype(np, x.dtype)
    x, w, b, g = (a.astype(work) for a in (x, w, b, g))
    size = uscale_ref._backend.itemsize(np, work)
    results = {}
    for op in OPS:
        if path not in valid_paths(op, geometry):
            continue
        plan = kernels.make_plan(op, geometry, size, workspace_bytes, path=path, eager=eager)
        if op == "forward":
            results[op] = kernels.forward(np, x, w, geometry, plan, bias=b)
        elif op == "input_grad":
            results[op] = kernels.input_grad(np, g, w, geometry, plan)
        else:
            results[op] = kernels.weight_grad(np, g, x, geometry, plan)
    return results


def _run_textbook(arrays, kwargs):
    x, w, b, g = (arrays[k] for k in ("input", "weight", "bias", "grad_output"))
    geometry = conv1d_geometry(x.shape, w.shape, **kwargs)
    work = uscale_ref._backend.compute_dtype(np, x.dtype)
    x, w, b, g = (a.astype(work) for a in (x, w, b, g))
    magnitude = {
        "forward": textbook.forward_sum(abs(x), abs(w), geometry) + abs(b)[:, None],
        "input_grad": textbook.input_grad(abs(g), abs(w), geometry),
        "weight_grad": textbook.weight_grad(abs(g), abs(x), geometry),
    }
    values = {
        "forward": textbook.forward_sum(x, w, geometry) + b[:, None],
        "input_grad": textbook.input_grad(g, w, geometry),
        "weight_grad": textbook.weight_grad(g, x, geometry),
    }
    return values, magnitude


def assert_same_values(ours, expected, magnitude, dtype, what):
    """Same non-finite pattern (NaN, +inf, -inf; for complex, finite or not), finite values
    within a few units of rounding of the magnitude of their terms."""
    assert ours.shape == expected.shape, what
    if np.iscomplexobj(expected):
        np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(expected), err_msg=what)
    else:
        for test in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(test(ours), test(expected), err_msg=f"{what} {test}")
    finite = np.isfinite(expected)
    eps = np.finfo(np.dtype(dtype)).eps if np.dtype(dtype) != np.float16 else 2.0**-24
    bound = 64 * eps * np.where(np.isfinite(magnitude), magnitude, 0)[finite] + 1e-300
    error = np.abs(ours[finite] - expected[finite])
    assert np.all(error <= bound), f"{what}: worst error {np.max(error - bound)} over the bound"


@functools.cache
def _textbook_results(case_id, dtype, where, value):
    arrays = _poisoned(case_id, dtype, where, value)
    kwargs = cases.conv_kwargs(cases.spec(case_id))
    with np.errstate(all="ignore"):
        return _run_textbook(arrays, kwargs)


POISONS = [
    pytest.param(None, 0.0, id="finite"),
    *(
        pytest.param(where, value, id=f"{name}-{where}")
        for where in ("input", "weight", "bias", "grad_output")
        for name, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf))
    ),
]


@pytest.mark.parametrize(("where", "value"), POISONS)
@pytest.mark.parametrize("dtype", ["float32", "complex128", "float16"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_every_path_matches_the_textbook(case_id, path, dtype, where, value):
    arrays = _poisoned(case_id, dtype, where, value)
    kwargs = cases.conv_kwargs(cases.spec(case_id))
    expected, magnitude = _textbook_results(case_id, dtype, where, value)
    ran = False
    for workspace_bytes, eager in itertools.product(WORKSPACES, (True, False)):
        with np.errstate(all="ignore"):
            results = _run_kernels(arrays, kwargs, path, workspace_bytes, eager)
        for op, ours in results.items():
            ran = True
            what = f"{op} on {path}, {workspace_bytes} B, eager={eager}"
            assert_same_values(ours, expected[op], magnitude[op], dtype, what)
    if not ran:
        pytest.skip(f"{path} computes nothing for {case_id}")


@pytest.mark.parametrize(("where", "value"), POISONS[1:])
@pytest.mark.parametrize("case_id", ["basic", "stride2_pad1", "everything", "depthwise_k5"])
def test_textbook_non_finite_pattern_matches_the_loop_definition(case_id, where, value):
    """The textbook's NaN/inf placement against the loops (which sum term by term)."""
    arrays = _poisoned(case_id, "float64", where, value)
    case = cases.spec(case_id)
    geo = cases.geometry(case)
    x, w, b, g = (arrays[k] for k in ("input", "weight", "bias", "grad_output"))
    expected, _ = _textbook_results(case_id, "float64", where, value)
    with np.errstate(all="ignore"):
        loops = {
            "forward": oracles.loop_forward(x, w, b, geo),
            "input_grad": oracles.loop_input_grad(g, w, x.shape[-1], geo),
            "weight_grad": oracles.loop_weight_grad(g, x, w.shape[-1], geo),
        }
    for op, value_loop in loops.items():
        for test in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(test(expected[op]), test(value_loop), err_msg=op)


def test_the_issue_examples():
    """A NaN or inf weight meets no padding zero in dgrad (PyTorch's answer)."""
    g = np.ones((1, 1, 3))
    grads = uscale_ref.conv1d_backward(g, np.zeros((1, 1, 4)), np.array([[[np.nan, 1.0]]]))
    np.testing.assert_array_equal(np.isnan(grads.grad_input[0, 0]), [True, True, True, False])
    assert grads.grad_input[0, 0, 3] == pytest.approx(2**-0.5)
    grads = uscale_ref.conv1d_backward(g, np.ones((1, 1, 4)), np.array([[[1.0, np.inf]]]))
    np.testing.assert_array_equal(grads.grad_input[0, 0, 1:], np.inf)
    assert grads.grad_input[0, 0, 0] == pytest.approx(2**-0.5)


@pytest.mark.parametrize(
    "case_id", ["depthwise_k5", "depthwise_dilated_same", "depthwise_wide_span"]
)
def test_long_depthwise_kernels_plan_band_matrices(case_id):
    """These cases really take the band-matrix path on NumPy (and it computes, finite data)."""
    case = cases.spec(case_id)
    x, w, _, _ = cases.make_inputs(case_id, "float32")
    geometry = conv1d_geometry(x.shape, w.shape, **cases.conv_kwargs(case))
    for op in ("forward", "input_grad"):
        assert kernels.plan_for(op, np, geometry, np.float32).path == "banded"
    x = x if x.ndim == 3 else x[None]
    bands = kernels.banded.bands_for(np, w[:, 0, :], 1, 0)
    assert bands is not None and bands.correlate(x, 0, 4, np.float32) is not None


def test_band_products_leave_blocks_that_are_not_finite_to_the_direct_sums():
    """A NaN or inf in a block's data, or in a tap, and the bands compute nothing for it."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 100))
    taps = rng.standard_normal((3, 5))
    bands = kernels.banded.bands_for(np, taps, 1, 0)
    assert bands.correlate(x, 0, 40, np.float64) is not None
    x[1, 2, 70] = np.inf
    assert bands.correlate(x, 0, 40, np.float64) is not None  # reads x[..., :56] only
    assert bands.correlate(x, 48, 96, np.float64) is None
    taps[0, 3] = np.nan
    assert kernels.banded.bands_for(np, taps, 1, 0) is None


@pytest.mark.parametrize("op", ["forward", "input_grad"])
def test_band_blocks_with_an_inf_keep_it_where_the_definition_puts_it(op):
    """Many band blocks, one inf: its block sums directly, every other block uses bands."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 3000))
    w = rng.standard_normal((6, 1, 7))
    g = rng.standard_normal((2, 6, 3000))
    (x if op == "forward" else g)[1, 4, 1500] = np.inf
    geometry = conv1d_geometry(x.shape, w.shape, padding=3, groups=6)
    plan = kernels.make_plan(op, geometry, 8, 64 * 2**10)
    assert plan.path == "banded" and plan.block_length < 3000
    if op == "forward":
        ours = kernels.forward(np, x, w, geometry, plan)
        expected = textbook.forward_sum(x, w, geometry)
    else:
        ours = kernels.input_grad(np, g, w, geometry, plan)
        expected = textbook.input_grad(g, w, geometry)
    np.testing.assert_array_equal(np.isinf(ours), np.isinf(expected))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(ours[finite], expected[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case_id", ["stride_equals_kernel", "stride_equals_span", "everything"])
@pytest.mark.parametrize("dtype", ["float16", "complex64"])
def test_stacked_taps_are_the_taps_side_by_side(case_id, dtype):
    """Built from the tiled input view (stride = K d) or stacked, the same columns, bit for bit."""
    x, w, _, _ = cases.make_inputs(case_id, dtype)
    x = x if x.ndim == 3 else x[None]
    geometry = conv1d_geometry(x.shape, w.shape, **cases.conv_kwargs(cases.spec(case_id)))
    work = np.complex64 if dtype == "complex64" else np.float32
    for first, width in [(0, geometry.out_length), (1, 2), (geometry.out_length - 1, 1)]:
        for conjugate in (False, True):
            taps = kernels.taps.input_taps(np, x, geometry, first, width, work, conjugate)
            expected = kernels.products.stack_taps(np, taps)
            got = kernels.taps.stacked_input_taps(np, x, geometry, first, width, work, conjugate)
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("op", "kwargs"),
    [
        ("forward", {"padding": 2}),
        ("input_grad", {"padding": 2}),
        ("input_grad", {"padding": 3, "dilation": 2, "stride": 2}),
    ],
)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_folded_items_keep_their_inf_and_nan_to_themselves(op, kwargs, value):
    """Laid end to end, an item's last and the next item's first positions sit side by side.

    The columns that mix them are dropped, so a NaN or inf at an item's end
    reaches only the outputs the definition gives it, in that item alone.
    """
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 4, 23))
    w = rng.standard_normal((6, 4, 4))
    geometry = conv1d_geometry(x.shape, w.shape, **kwargs)
    g = rng.standard_normal((5, 6, geometry.out_length))
    data = x if op == "forward" else g
    data[1, :, -1] = value  # the end of item 1, next to item 2's start
    data[3, 0, 0] = -value  # the start of item 3, next to item 2's end
    arrays = {"input": x, "weight": w, "bias": np.zeros(6), "grad_output": g}
    with np.errstate(all="ignore"):
        expected, magnitude = _run_textbook(arrays, kwargs)
        for workspace_bytes in WORKSPACES:
            ours = _run_kernels(arrays, kwargs, "folded", workspace_bytes)[op]
            what = f"{op} folded, {workspace_bytes} B"
            assert_same_values(ours, expected[op], magnitude[op], "float64", what)
    assert np.all(np.isfinite(expected[op][[0, 2, 4]]))  # the other items stay finite


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case_id", list(cases.CASES))
def test_every_path_returns_arrays_of_its_own_in_c_order(case_id, path):
    """No path hands back a view into a larger or transposed work array."""
    arrays = _poisoned(case_id, "float32", None, None)
    kwargs = cases.conv_kwargs(cases.spec(case_id))
    for workspace_bytes in WORKSPACES:
        for op, ours in _run_kernels(arrays, kwargs, path, workspace_bytes).items():
            assert ours.flags.c_contiguous, f"{op} on {path}, {workspace_bytes} B"


def test_folding_is_planned_where_it_pays():
    """Batches with work and several taps per product fold; tiny calls and one-tap phases do not."""
    dense = conv1d_geometry((8, 64, 1024), (64, 64, 5), padding=2)
    assert kernels.make_plan("forward", dense, 4, 2**26).path == "folded"
    assert kernels.make_plan("input_grad", dense, 4, 2**26).path == "folded"
    assert kernels.make_plan("weight_grad", dense, 4, 2**26).path == "per_tap"
    pair = conv1d_geometry((2, 64, 1024), (64, 64, 5), padding=2)
    tiny = conv1d_geometry((8, 8, 64), (8, 8, 3), padding=1)
    patchify = conv1d_geometry((8, 64, 4096), (128, 64, 4), stride=4)
    for geometry, op in [(pair, "forward"), (tiny, "forward"), (patchify, "input_grad")]:
        assert kernels.make_plan(op, geometry, 4, 2**26).path != "folded"
    # Stride 2 with dilation 2: every tap lands in one phase, three taps per product.
    one_phase = conv1d_geometry((8, 64, 1024), (64, 64, 3), stride=2, dilation=2, padding=2)
    assert kernels.make_plan("input_grad", one_phase, 4, 2**26).path == "folded"
    two_phases = conv1d_geometry((8, 64, 1024), (64, 64, 3), stride=2, padding=1)
    assert kernels.make_plan("input_grad", two_phases, 4, 2**26).path != "folded"
    with pytest.raises(ValueError, match="path 'folded' cannot compute weight_grad"):
        kernels.make_plan("weight_grad", dense, 4, 2**20, path="folded")
    with pytest.raises(ValueError, match="path 'folded' cannot compute forward"):
        kernels.make_plan("forward", patchify, 4, 2**20, path="folded")


@pytest.mark.parametrize("shape", benchmark.SHAPES, ids=lambda s: s.label)
def test_accelerator_plans_are_whole_blocks_without_bands_and_stack_wgrad(shape):
    """On a GPU: nothing cut to a cache, no band matrices, wgrad stacked, else the CPU's paths."""
    x, w, _, _ = benchmark.make_arrays(shape, np.random.default_rng(0))
    geometry = conv1d_geometry(x.shape, w.shape, **shape.kwargs)
    for op in OPS:
        host = kernels.make_plan(op, geometry, 4, 2**26)
        gpu = kernels.make_plan(op, geometry, 4, 2**26, accelerator=True)
        assert not gpu.cache_blocked
        if op == "weight_grad":
            assert gpu.path == "stacked"
        elif host.path == "banded":
            assert gpu.path == "broadcast"
        else:
            assert gpu.path == host.path
        # Blocks only as the workspace bounds them: at least the host's, the whole when it fits.
        if gpu.path == host.path:
            assert gpu.batch_chunk * gpu.block_length >= host.batch_chunk * host.block_length
    depthwise = conv1d_geometry((8, 256, 2048), (256, 1, 7), padding=3, groups=256)
    plan = kernels.make_plan("weight_grad", depthwise, 4, 2**26, accelerator=True)
    assert (plan.batch_chunk, plan.block_length) == (8, 744)  # was (1, 819) cut to the cache


def test_plans_are_checked():
    geometry = conv1d_geometry((2, 4, 12), (6, 4, 3))
    with pytest.raises(ValueError, match="path 'banded' cannot compute forward"):
        kernels.make_plan("forward", geometry, 4, 2**20, path="banded")


EXTREMES = [
    pytest.param({"stride": 10**7}, id="stride-1e7"),
    pytest.param({"stride": 2**62}, id="stride-2^62"),
    pytest.param({"dilation": 10**8, "padding": 10**8, "stride": 10**8}, id="all-1e8"),
    pytest.param({"dilation": 2**60, "padding": 2**60, "stride": 2**61}, id="all-2^60"),
]


@pytest.mark.parametrize("kwargs", EXTREMES)
def test_cost_follows_the_sizes_not_the_arguments(kwargs):
    """Huge strides, dilations and paddings on tiny arrays: small memory, the loops' answer."""
    x = np.array([[[1.5, -2.0, 0.25]]])
    w = np.array([[[2.0, -1.0]]])
    geo = oracles.Geometry.resolve(2, **kwargs)
    out_length = geo.out_length(3, 2)
    g = np.arange(1.0, out_length + 1).reshape(1, 1, out_length)
    tracemalloc.start()
    try:
        y = uscale_ref.correlate(x, w, **kwargs)
        grad_x = uscale_ref.correlate_input_grad(g, w, input_length=3, **kwargs)
        grad_w = uscale_ref.correlate_weight_grad(g, x, kernel_size=2, **kwargs)
        uscale_ref.conv1d_backward(g, x, w, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes for arrays of a few elements"
    np.testing.assert_array_equal(y, oracles.loop_forward(x, w, None, geo))
    np.testing.assert_array_equal(grad_x, oracles.loop_input_grad(g, w, 3, geo))
    np.testing.assert_array_equal(grad_w, oracles.loop_weight_grad(g, x, 2, geo))


def test_an_output_past_addressable_memory_is_refused_up_front():
    with pytest.raises(
        ValueError, match=r"more than can be addressed; check padding=4611686018427387904"
    ):
        uscale_ref.conv1d(np.ones((1, 1, 1)), np.ones((1, 1, 1)), padding=2**62)


@pytest.mark.parametrize(
    "case_id", ["basic", "stride2_pad1", "stride_gt_kernel", "depthwise_k5", "everything"]
)
def test_jax_jit_traces_every_path(case_id):
    """Under jax.jit nothing may look at values: no band-matrix check, exact dgrad edges."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    x, w, b, g = (jnp.asarray(a) for a in cases.make_inputs(case_id, "float32"))
    kwargs = cases.conv_kwargs(cases.spec(case_id))
    forward = jax.jit(lambda x, w, b: uscale_ref.conv1d(x, w, b, **kwargs))
    backward = jax.jit(lambda g, x, w, b: tuple(uscale_ref.conv1d_backward(g, x, w, b, **kwargs)))
    expected = textbook.conv1d_backward(g, x, w, b, **kwargs)
    np.testing.assert_allclose(
        forward(x, w, b), textbook.conv1d(x, w, b, **kwargs), rtol=1e-5, atol=1e-5
    )
    for ours, theirs in zip(backward(g, x, w, b), expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case_id", ["basic", "stride2_pad1", "dilation3", "everything"])
def test_jax_runs_the_folded_path_traced(case_id):
    """JAX arrays cannot be written in place: the fold is unfolded by concatenation there."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    x, w, _, g = cases.make_inputs(case_id, "float32")
    x, g = (a if a.ndim == 3 else a[None] for a in (x, g))
    geometry = conv1d_geometry(x.shape, w.shape, **cases.conv_kwargs(cases.spec(case_id)))
    ops = {
        "forward": lambda x, w, g, plan: kernels.forward(jnp, x, w, geometry, plan),
        "input_grad": lambda x, w, g, plan: kernels.input_grad(jnp, g, w, geometry, plan),
    }
    expected = {
        "forward": textbook.forward_sum(x, w, geometry),
        "input_grad": textbook.input_grad(g, w, geometry),
    }
    ran = 0
    for op, run in ops.items():
        if "folded" not in valid_paths(op, geometry):
            continue
        for workspace_bytes in WORKSPACES:
            plan = kernels.make_plan(op, geometry, 4, workspace_bytes, path="folded", eager=False)
            traced = jax.jit(lambda x, w, g, plan=plan, run=run: run(x, w, g, plan))
            ours = traced(*(jnp.asarray(a) for a in (x, w, g)))
            np.testing.assert_allclose(ours, expected[op], rtol=1e-5, atol=1e-5, err_msg=op)
            ran += 1
    assert ran


@pytest.mark.parametrize("case_id", ["basic", "groups2", "depthwise_k5", "everything"])
def test_jax_products_ask_for_full_precision(monkeypatch, case_id):
    """On a GPU JAX multiplies float32 in reduced precision by default (8.4e3 units off, H200).

    Every matrix product and dot product of every path must ask for "highest".
    """
    pytest.importorskip("jax")
    import jax.numpy as jnp

    seen = []

    def spy(name):
        original = getattr(jnp, name)

        def product(*args, **kwargs):
            seen.append((name, kwargs.get("precision")))
            return original(*args, **kwargs)

        return product

    for name in ("matmul", "vecdot"):
        monkeypatch.setattr(jnp, name, spy(name))
    arrays = {k: jnp.asarray(v) for k, v in _poisoned(case_id, "float32", None, None).items()}
    x, w, b, g = (arrays[k] for k in ("input", "weight", "bias", "grad_output"))
    geometry = conv1d_geometry(x.shape, w.shape, **cases.conv_kwargs(cases.spec(case_id)))
    for op in OPS:
        for path in valid_paths(op, geometry):
            plan = kernels.make_plan(op, geometry, 4, 2**30, path=path)
            if op == "forward":
                kernels.forward(jnp, x, w, geometry, plan, bias=b)
            elif op == "input_grad":
                kernels.input_grad(jnp, g, w, geometry, plan)
            else:
                kernels.weight_grad(jnp, g, x, geometry, plan)
    assert {name for name, _ in seen} >= {"matmul"}
    assert all(precision == "highest" for _, precision in seen), seen


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case_id", ["basic", "groups2", "dilation3", "depthwise_k5", "everything"])
def test_every_path_runs_on_the_strict_namespace(case_id, path):
    """array-api-strict allows nothing beyond the standard: each path keeps to it."""
    xps = pytest.importorskip("array_api_strict")
    arrays = _poisoned(case_id, "float64", None, None)
    x, w, g = (arrays[k] for k in ("input", "weight", "grad_output"))
    geometry = conv1d_geometry(x.shape, w.shape, **cases.conv_kwargs(cases.spec(case_id)))
    expected, magnitude = _run_textbook(arrays, cases.conv_kwargs(cases.spec(case_id)))
    expected["forward"] = expected["forward"] - arrays["bias"][:, None]
    ran = 0
    for op in OPS:
        if path not in valid_paths(op, geometry):
            continue
        for workspace_bytes in WORKSPACES:
            plan = kernels.make_plan(op, geometry, 8, workspace_bytes, path=path)
            xs, ws, gs = (xps.asarray(a) for a in (x, w, g))
            if op == "forward":
                ours = kernels.forward(xps, xs, ws, geometry, plan)
            elif op == "input_grad":
                ours = kernels.input_grad(xps, gs, ws, geometry, plan)
            else:
                ours = kernels.weight_grad(xps, gs, xs, geometry, plan)
            what = f"{op} on {path}, {workspace_bytes} B"
            assert_same_values(np.asarray(ours), expected[op], magnitude[op], "float64", what)
            ran += 1
    if not ran:
        pytest.skip(f"{path} computes nothing for {case_id}")
