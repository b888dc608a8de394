"""Whole results from float64 sums and their error bound, held to the exact route's bytes.

The filtered route (:mod:`uscale_ref.exact.filtered`) must give the bytes of
the exact sliced route (:func:`uscale_ref.exact.sliced.expected_results`) on
every case: its float64 values where their bound settles them, the exact
arithmetic elsewhere. These tests compare the two on drawn cases of every
dtype and geometry, force each way out (open elements computed at their
positions, a sum too open to settle, inputs outside the bound's range,
inf and NaN), and hold the bound itself to rational arithmetic.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uscale_ref.exact import filtered, ozaki, points, sliced
from uscale_ref.golden.fixture import Fixture, build
from uscale_ref.golden.suite import CaseSpec
from uscale_ref.scales import scales_for_geometry
from uscale_ref.testing.strategies import case_specs

DTYPES = ["float32", "float64", "complex64", "complex128", "float16", "bfloat16", "complex32"]
GEOMETRIES = [
    dict(kernel_size=3, batch_size=3, in_channels=8, out_channels=12, length=40, padding="same"),
    dict(kernel_size=4, batch_size=2, in_channels=6, out_channels=6, length=33, padding=2,
         groups=6, stride=2),
    dict(kernel_size=4, batch_size=2, in_channels=6, out_channels=4, length=33, padding="same",
         groups=2),
    dict(kernel_size=5, batch_size=2, in_channels=16, out_channels=8, length=70, groups=2,
         dilation=2, bias=False),
    dict(kernel_size=2, batch_size=None, in_channels=5, out_channels=3, length=300, padding=1,
         stride=3),
]  # fmt: skip


def _problem(spec):
    arrays, metadata = build(spec)
    case = Fixture(spec.id, metadata, arrays)  # operands of FP8 cases decoded from their bytes
    x, d = case.input("input"), case.input("grad_output")
    if spec.batch_size is None:
        x, d = x[None], d[None]
    g = spec.geometry
    scales = scales_for_geometry(g, spec.constraint, spec.scale_power)
    return x, case.input("weight"), case.input("bias"), d, g, scales


def _same_bytes(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for left, right in zip(a[name], b[name], strict=True):
            assert left.dtype == right.dtype, name
            assert left.tobytes() == right.tobytes(), name


def _both(x, w, b, d, g, scales, dtype=None, monkeypatch=None, **options):
    """Both routes' bytes, the same; with ``monkeypatch``, the filtered route must not
    take the exact route for a whole sum."""
    held_exact, held_filtered = {}, {}
    exact = sliced.expected_results(x, w, b, d, g, scales, dtype, unscaled_out=held_exact)
    if monkeypatch is not None:
        for name in ("forward", "input_grad", "weight_grad"):
            monkeypatch.setattr(sliced, name, lambda *a, name=name, **k: pytest.fail(name))
    fast = filtered.expected_results(x, w, b, d, g, scales, dtype, unscaled_out=held_filtered,
                                     **options)  # fmt: skip
    _same_bytes(exact, fast)
    _same_bytes({k: (v,) for k, v in held_exact.items()},
                {k: (v,) for k, v in held_filtered.items()})  # fmt: skip
    return fast


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=range(len(GEOMETRIES)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_filtered_route_gives_the_exact_routes_bytes(dtype, geometry, monkeypatch):
    spec = CaseSpec(dtype=dtype, **geometry)
    _both(*_problem(spec), dtype, monkeypatch=monkeypatch)


class _Counting:
    """Counts the positions the filtered route hands to the exact arithmetic."""

    def __init__(self, monkeypatch):
        self.positions = 0
        for name in ("output_at", "input_grad_at"):
            original = getattr(points, name)
            monkeypatch.setattr(points, name, self._counted(original))
        original = points.weight_grad_grid

        def grid(source, geometry, rows, columns, *args, **kwargs):
            self.positions += rows.size * columns.size
            return original(source, geometry, rows, columns, *args, **kwargs)

        monkeypatch.setattr(points, "weight_grad_grid", grid)

    def _counted(self, original):
        def counted(source, geometry, flat, *args, **kwargs):
            self.positions += flat.size
            return original(source, geometry, flat, *args, **kwargs)

        return counted


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64"])
def test_open_elements_are_computed_exactly_at_their_positions(dtype, monkeypatch):
    # Small integers: many sums cancel exactly to zero or land on a rounding tie,
    # which no float64 bound can settle.
    spec = CaseSpec(dtype=dtype, kernel_size=3, batch_size=2, in_channels=6, out_channels=5,
                    length=60, padding="same")  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    rng = np.random.default_rng(7)

    def integers(a):
        values = rng.integers(-2, 3, size=a.shape).astype(a.dtype)
        if np.iscomplexobj(a):
            values = values + 1j * rng.integers(-2, 3, size=a.shape)
        return values.astype(a.dtype)

    x, d = integers(x), integers(d)
    x[:, :, ::2] = 0  # enough regular zeros that whole sums vanish here and there
    counting = _Counting(monkeypatch)
    _both(x, w, b, d, g, scales)
    assert counting.positions > 0


def test_a_sum_too_open_to_settle_is_computed_exactly_whole(monkeypatch):
    # Every forward sum is exactly zero: the float64 bound settles none of them.
    spec = CaseSpec(dtype="float32", kernel_size=2, batch_size=4, in_channels=4, out_channels=4,
                    length=400, bias=False)  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    x = np.ones_like(x)
    w = np.array(np.broadcast_to(np.array([1.0, -1.0], dtype=w.dtype), w.shape))
    called = []
    original = sliced.forward
    monkeypatch.setattr(sliced, "forward", lambda *a, **k: called.append(1) or original(*a, **k))
    result = _both(x, w, b, d, g, scales)
    assert called, "the exact route was not taken"
    assert not result["output"][0].any()


@pytest.mark.parametrize("scale", [2.0**-600, 2.0**650])
def test_inputs_beyond_the_bounds_range_take_the_exact_route(scale):
    spec = CaseSpec(dtype="float64", kernel_size=3, batch_size=2, in_channels=3, out_channels=4,
                    length=20, padding=1)  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    x = x * scale
    assert not filtered.usable([((x, None), (w, None))], (scales.output,), 9)
    _both(x, w, b, d, g, scales)


def test_inf_and_nan_inputs_give_the_exact_routes_bytes():
    spec = CaseSpec(dtype="complex64", kernel_size=3, batch_size=2, in_channels=4, out_channels=4,
                    length=12, padding=2, stride=2)  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    x, w, d = x.copy(), w.copy(), d.copy()
    x[0, 1, 3], w[2, 0, 1], d[1, 3, 2] = complex(np.inf, 1), complex(0, np.nan), -np.inf
    _both(x, w, b, d, g, scales)


def test_blocking_and_threads_do_not_change_the_bytes():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    spec = CaseSpec(dtype="float64", kernel_size=5, batch_size=3, in_channels=16,
                    out_channels=16, length=700, padding="same")  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    first = filtered.expected_results(x, w, b, d, g, scales)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        _same_bytes(first, filtered.expected_results(x, w, b, d, g, scales, memory=2**14))
    _same_bytes(first, sliced.expected_results(x, w, b, d, g, scales))


def test_the_progress_hook_is_called_six_times():
    spec = CaseSpec(dtype="float32", kernel_size=3, batch_size=1, in_channels=2, out_channels=2,
                    length=10)  # fmt: skip
    calls = []
    filtered.expected_results(*_problem(spec), step=lambda: calls.append(1))
    assert len(calls) == 6


# -- the bound itself ------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_a_float64_matrix_product_lies_within_the_bound_of_its_exact_value(seed):
    rng = np.random.default_rng(seed)
    inner = 300
    # Wide exponents and signs, so that rounding errors are as large as they get.
    a = rng.standard_normal((6, inner)) * 2.0 ** rng.integers(-20, 20, (6, inner))
    b = rng.standard_normal((inner, 5)) * 2.0 ** rng.integers(-20, 20, (inner, 5))
    computed = a @ b
    magnitude = np.abs(a) @ np.abs(b)
    bound = filtered.gamma(inner) * magnitude
    for i in range(6):
        for j in range(5):
            exact = sum(Fraction(float(a[i, k])) * Fraction(float(b[k, j])) for k in range(inner))
            assert abs(Fraction(float(computed[i, j])) - exact) <= Fraction(float(bound[i, j]))


def test_settled_values_round_like_the_exact_value_and_the_rest_stay_open():
    rng = np.random.default_rng(3)
    exact = rng.standard_normal(2000)
    # A float32 tie or its neighbours: the estimate cannot tell which side it is on.
    exact[:50] = 1.5 + 2.0**-24  # half-way between two float32 neighbours
    noise = rng.uniform(-1, 1, exact.size) * 2.0**-46
    estimate = filtered.Estimate([exact + noise], np.full(exact.size, 1.0), 200)
    # gamma(200) is about 2**-45.3: the noise stays inside the bound.
    assert filtered.gamma(200) > 2.0**-46
    values, open_ = filtered.settle_values(estimate.sums, estimate.magnitude, estimate.depth, 1.0,
                                           "float32")  # fmt: skip
    assert open_[:50].all()
    settled = ~open_
    assert settled.sum() > 1900
    np.testing.assert_array_equal(values[0][settled], exact[settled].astype(np.float32))


def test_pairwise_sums_add_each_term_through_few_additions():
    total = filtered._Pairwise()
    for _ in range(1000):
        total.add(np.ones(3))
    np.testing.assert_array_equal(total.total(), [1000.0] * 3)
    # A binary counter: about log2(count) merges, then the levels left.
    assert filtered._Pairwise.depth(1000) == 20


def test_sums_of_zero_terms_settle_as_plus_zero_without_exact_work(monkeypatch):
    # Half the input channels' rows are zero, and a zero weight row: many sums have
    # no non-zero term at all, which no bound on a float64 value alone can settle.
    spec = CaseSpec(dtype="float64", kernel_size=3, batch_size=2, in_channels=4, out_channels=4,
                    length=50, bias=False)  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    w = w.copy()
    w[1] = 0
    counting = _Counting(monkeypatch)
    result = _both(x, w, b, d, g, scales)
    output = result["output"][0]
    assert (output[:, 1] == 0).all() and not np.signbit(output[:, 1]).any()
    assert counting.positions == 0


@pytest.mark.parametrize("target", ["float64", "float32", "float16", "bfloat16"])
def test_a_pair_at_zero_with_a_bound_is_not_settled(target):
    # The value may be any number within the bound of zero: even the smallest
    # subnormal is further from zero than half of zero's gap.
    smallest = {"float64": 2.0**-1074, "float32": 2.0**-149, "float16": 2.0**-24,
                "bfloat16": 2.0**-133}[target]  # fmt: skip
    zero = np.zeros(4)
    left_out = np.array([0.0, smallest / 4, smallest, 2.0**-20])  # (2**-1076 is 0)
    result, decided = ozaki.round_bounded(zero, zero, left_out, 1.0, target)
    assert decided.tolist() == [True, True, False, False]
    assert not result.any()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_results_near_and_beyond_the_largest_number_give_the_exact_routes_bytes(dtype):
    spec = CaseSpec(dtype=dtype, kernel_size=3, batch_size=2, in_channels=8, out_channels=4,
                    length=30, padding=1)  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    largest = float(np.finfo(np.float16).max if dtype == "float16" else np.finfo(np.float32).max)
    # Sums around the largest finite number: some round to it, some overflow to inf.
    x = (x * np.float32(np.sqrt(largest) * 2)).astype(x.dtype)
    w = (w * np.float32(np.sqrt(largest) * 2)).astype(w.dtype)
    result = _both(x, w, b, d, g, scales)
    assert np.isinf(result["output"][0]).any() and np.isfinite(result["output"][0]).any()


@pytest.mark.parametrize(
    "geometry",
    [dict(kernel_size=1, batch_size=2, in_channels=3, out_channels=2, length=9),
     dict(kernel_size=5, batch_size=3, in_channels=2, out_channels=2, length=5),
     dict(kernel_size=3, batch_size=1, in_channels=2, out_channels=2, length=7, dilation=3)],
)  # fmt: skip
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128"])
def test_one_tap_and_one_output_give_the_exact_routes_bytes(dtype, geometry):
    _both(*_problem(CaseSpec(dtype=dtype, **geometry)))


@settings(max_examples=40, deadline=None)
@given(
    spec=case_specs(DTYPES, max_channels=6, max_length=40, max_kernel=6),
    power=st.integers(-60, 60),
    integers=st.booleans(),
)
def test_drawn_problems_give_the_exact_routes_bytes(spec, power, integers):
    x, w, b, d, g, scales = _problem(spec)
    if integers:  # ties and exact cancellations, which the bound cannot settle
        x, d = np.round(x * 2).astype(x.dtype), np.round(d * 2).astype(d.dtype)
    with np.errstate(over="ignore"):  # float16 inputs may overflow to inf: they may
        x = (x * np.float32(2.0**power)).astype(x.dtype)
    _both(x, w, b, d, g, scales, spec.dtype)


@pytest.mark.parametrize("dtype", ["float32", "complex64"])
def test_a_layer_large_enough_to_leave_elements_open_gives_the_exact_routes_bytes(
    dtype, monkeypatch
):
    spec = CaseSpec(dtype=dtype, kernel_size=9, batch_size=2, in_channels=64, out_channels=64,
                    length=1500, padding="same")  # fmt: skip
    counting = _Counting(monkeypatch)
    _both(*_problem(spec))
    assert counting.positions > 0


@pytest.mark.parametrize("dtype", ["float64", "complex128", "float32"])
def test_inputs_spanning_many_binades_give_the_exact_routes_bytes(dtype):
    # Elements from about 2**-120 to 2**120 in one array: the bound, set by the largest
    # terms, leaves the small sums open; they are computed exactly (or the whole sum is).
    spec = CaseSpec(dtype=dtype, kernel_size=3, batch_size=2, in_channels=5, out_channels=4,
                    length=60, padding="same")  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    rng = np.random.default_rng(11)
    x = (x * 2.0 ** rng.integers(-120, 120, x.shape)).astype(x.dtype)
    d = (d * 2.0 ** rng.integers(-120, 120, d.shape)).astype(d.dtype)
    _both(x, w, b, d, g, scales)


def test_a_part_that_is_zero_throughout_gives_the_exact_routes_bytes():
    # Integer inputs of one element, where a real or an imaginary part rounds to zero and
    # has no slices: its stacked operand is padded with zeros of the other part's shape.
    spec = CaseSpec(dtype="complex64", kernel_size=1, batch_size=None, in_channels=1,
                    out_channels=1, length=1, stride=2, bias=False, constraint="gmean")  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    x, d = np.round(x * 2).astype(x.dtype), np.round(d * 2).astype(d.dtype)
    _both(x, w, b, d, g, scales, spec.dtype)
