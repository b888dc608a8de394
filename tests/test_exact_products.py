"""The exact sliced products behind the fixtures, held to rational arithmetic and to themselves.

Three layers: every element of tiny adversarial problems against sums of
``fractions.Fraction`` rounded by a check written here; the element-wise
double-double route on drawn cases; and identical bytes whatever the BLAS
threads, the blocking or the order of batch items and channels.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from uscale_ref import textbook
from uscale_ref.exact import bounds, ozaki, sliced
from uscale_ref.exact import doubledouble as exact
from uscale_ref.geometry import conv1d_geometry
from uscale_ref.golden.fixture import Fixture, build
from uscale_ref.golden.suite import CaseSpec
from uscale_ref.scales import scales_for_geometry

# -- an independent exact definition ------------------------------------------


def _sums(x, w, b, delta, g):
    """The three sums and the bias sum as dictionaries of Fractions, by loops over the terms."""
    F = Fraction
    fan_in, out_g = g.fan_in, g.out_channels // g.groups
    x_pad = {}
    for n, c, t in itertools.product(range(g.batch_size), range(g.in_channels), range(g.in_length)):
        x_pad[n, c, t + g.pad_left] = F(float(x[n, c, t]))
    forward, grad_in, grad_w, grad_b = {}, {}, {}, {}
    for n, o, l in itertools.product(
        range(g.batch_size), range(g.out_channels), range(g.out_length)
    ):
        group = o // out_g
        total = F(float(b[o])) if b is not None else F(0)
        for i, k in itertools.product(range(fan_in), range(g.kernel_size)):
            total += F(float(w[o, i, k])) * x_pad.get(
                (n, group * fan_in + i, l * g.stride + k * g.dilation), F(0)
            )
        forward[n, o, l] = total
    for n, c, t in itertools.product(range(g.batch_size), range(g.in_channels), range(g.in_length)):
        group, i = divmod(c, fan_in)
        total = F(0)
        for j, k in itertools.product(range(out_g), range(g.kernel_size)):
            position = t + g.pad_left - k * g.dilation
            if position % g.stride == 0 and 0 <= position // g.stride < g.out_length:
                o = group * out_g + j
                total += F(float(w[o, i, k])) * F(float(delta[n, o, position // g.stride]))
        grad_in[n, c, t] = total
    for o, i, k in itertools.product(range(g.out_channels), range(fan_in), range(g.kernel_size)):
        group = o // out_g
        total = F(0)
        for n, l in itertools.product(range(g.batch_size), range(g.out_length)):
            position = l * g.stride + k * g.dilation
            total += F(float(delta[n, o, l])) * x_pad.get((n, group * fan_in + i, position), F(0))
        grad_w[o, i, k] = total
    for o in range(g.out_channels):
        grad_b[o] = sum(
            (F(float(delta[n, o, l])) for n in range(g.batch_size) for l in range(g.out_length)),
            F(0),
        )
    return forward, grad_in, grad_w, grad_b


def _is_correctly_rounded(value: float, exact_value: Fraction, dtype) -> bool:
    """``value`` is the nearest ``dtype`` number to ``exact_value`` (ties to an even last bit)."""
    info = np.finfo(dtype)
    typed = dtype(value)
    if float(typed) != value:
        return False
    if np.isinf(value):
        return (
            abs(exact_value)
            >= Fraction(float(info.max)) + Fraction(float(np.spacing(info.max))) / 2
        )
    down = float(np.nextafter(typed, dtype(-np.inf)))
    up = float(np.nextafter(typed, dtype(np.inf)))
    error = abs(Fraction(value) - exact_value)
    for neighbour in (down, up):
        if np.isinf(neighbour):
            continue
        other = abs(Fraction(neighbour) - exact_value)
        if other < error:
            return False
        if other == error:  # a tie: the even one wins
            bits = np.array([value], dtype=dtype).view(f"u{np.dtype(dtype).itemsize}")[0]
            if int(bits) & 1:
                return False
    return True


def _adversarial(rng, shape, dtype, kind):
    """Values that make exact sums hard: wide exponent ranges, subnormals, zeros, ties."""
    if kind == "wide":
        reach = np.finfo(dtype).maxexp // 3
        values = rng.standard_normal(shape) * np.exp2(rng.integers(-reach, reach, shape))
    elif kind == "subnormal":
        tiny = np.finfo(dtype).smallest_subnormal
        values = rng.integers(-8, 9, shape) * float(tiny) * np.exp2(rng.integers(0, 30, shape))
        values[..., ::3] = rng.standard_normal(values[..., ::3].shape)
    elif kind == "ties":
        # Few-bit values: sums land on midpoints of the target format.
        values = rng.integers(-4, 5, shape) * np.exp2(rng.integers(-3, 4, shape))
        values.flat[::5] *= 1 + 2.0 ** -(np.finfo(dtype).nmant + 1)
    else:
        values = rng.standard_normal(shape)
    values = values.astype(dtype)
    values.flat[::7] = 0
    return values


GEOMETRIES = [
    {"kernel_size": 3, "padding": 1},
    {"kernel_size": 4, "padding": "same", "dilation": 2},
    {"kernel_size": 3, "stride": 2, "groups": 2},
    {"kernel_size": 2, "stride": 3},
]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("kind", ["normal", "wide", "subnormal", "ties"])
@pytest.mark.parametrize("arguments", GEOMETRIES, ids=str)
def test_every_element_is_the_correctly_rounded_rational_sum(dtype, kind, arguments):
    rng = np.random.default_rng(abs(hash((np.dtype(dtype).name, kind, str(arguments)))) % 2**32)
    g = conv1d_geometry(
        (2, 4, 9),
        (4, 4 // arguments.get("groups", 1), arguments["kernel_size"]),
        **{k: v for k, v in arguments.items() if k != "kernel_size"},
    )
    x = _adversarial(rng, (2, 4, 9), dtype, kind)
    w = _adversarial(rng, g.weight_shape, dtype, kind)
    b = _adversarial(rng, (4,), dtype, kind)
    delta = _adversarial(rng, (2, 4, g.out_length), dtype, kind)
    factor = 0.75 if kind == "ties" else 0.3
    target = np.dtype(dtype).name
    forward, grad_in, grad_w, grad_b = _sums(x, w, b, delta, g)
    parts = {
        name: (a.astype(np.float64), None)
        for name, a in {"x": x, "w": w, "b": b, "d": delta}.items()
    }
    x_pad = sliced._pad(parts["x"], g)
    got = {
        "output": sliced.forward(x_pad, parts["w"], parts["b"], g, factor, target)[0],
        "grad_input": sliced.input_grad(parts["d"], parts["w"], g, factor, target)[0],
    }
    weights, bias = sliced.weight_grad(parts["d"], x_pad, g, factor, target, factor)
    got["grad_weight"], got["grad_bias"] = weights[0], bias[0]
    want = {"output": forward, "grad_input": grad_in, "grad_weight": grad_w, "grad_bias": grad_b}
    wrong = [
        (name, index)
        for name, sums in want.items()
        for index, value in sums.items()
        if not _is_correctly_rounded(float(got[name][index]), value * Fraction(factor), dtype)
    ]
    assert not wrong, wrong[:5]


def test_exact_cancellation_gives_zero_and_exact_ties_go_to_even():
    # Input channels 0 and 1 are equal and their weights opposite: every
    # forward sum cancels to exactly zero, whatever the magnitudes.
    rng = np.random.default_rng(5)
    g = conv1d_geometry((1, 2, 6), (2, 2, 3), padding=1)
    x = np.repeat(rng.standard_normal((1, 1, 6)) * 1e30, 2, axis=1)
    w = rng.standard_normal((2, 1, 3)) * 1e-20
    w = np.concatenate([w, -w], axis=1)
    result = sliced.forward(sliced._pad((x, None), g), (w, None), None, g, 1.0, "float32")[0]
    assert np.all(result == 0) and not np.any(np.signbit(result))
    # 1 + 2^-24 is half-way between float32's 1 and 1 + 2^-23: ties to even
    # gives 1; a term of 2^-70 beside it decides for the upper neighbour.
    g1 = conv1d_geometry((1, 3, 1), (1, 3, 1))
    for tail, expected in ((0.0, 1.0), (2.0**-70, 1 + 2.0**-23), (-(2.0**-70), 1.0)):
        x = np.array([[[1.0], [2.0**-24], [tail]]])
        w = np.ones((1, 3, 1))
        got = sliced.forward(sliced._pad((x, None), g1), (w, None), None, g1, 1.0, "float32")[0]
        assert got[0, 0, 0] == expected


def test_rounding_undecided_by_the_pair_falls_back_to_the_exact_value():
    # 1 + 2^-53 is half-way between float64's 1 and 1 + 2^-52; a term of
    # 2^-200 is far below what a double-double holds, yet decides the tie.
    # Limb j weighs 2^(-20 j).
    for tail, expected in ((0.0, 1.0), (1.0, 1 + 2.0**-52), (-1.0, 1.0)):
        limbs = ozaki.Limbs((1,), 20)
        limbs.add(0, np.array([1.0]))
        limbs.add(3, np.array([2.0**7]))  # 2^7 * 2^-60 = 2^-53
        limbs.add(10, np.array([tail]))  # +-2^-200
        assert ozaki.round_scaled(limbs, np.array([0]), 1.0, "float64")[0] == expected
    # The same through the float32 path: 1 + 2^-24 is float32's midpoint.
    limbs = ozaki.Limbs((1,), 20)
    limbs.add(0, np.array([1.0]))
    limbs.add(2, np.array([2.0**16]))  # 2^16 * 2^-40 = 2^-24
    limbs.add(9, np.array([1.0]))  # 2^-180
    assert ozaki.round_scaled(limbs, np.array([0]), 1.0, "float32")[0] == 1 + 2.0**-23


def test_rational_rounding_handles_every_range():
    f16 = ozaki.TARGETS["float16"]
    assert ozaki.round_fraction(Fraction(65520), f16) == np.inf
    assert ozaki.round_fraction(Fraction(65519), f16) == 65504.0
    assert ozaki.round_fraction(Fraction(-1, 2**30), f16) == 0.0
    assert np.signbit(ozaki.round_fraction(Fraction(-1, 2**30), f16))
    assert ozaki.round_fraction(Fraction(3, 2**25), f16) == 2.0**-23  # a subnormal tie to even
    f64 = ozaki.TARGETS["float64"]
    for value in (Fraction(1, 3), Fraction(-7, 2**1080), Fraction(2**1100, 3)):
        got = ozaki.round_fraction(value, f64)
        try:
            assert got == float(value)
        except OverflowError:
            assert got == np.inf


# -- the double-double route and the committed suite --------------------------

DRAWN = [
    CaseSpec(
        dtype="float32",
        kernel_size=5,
        batch_size=3,
        in_channels=6,
        out_channels=9,
        length=37,
        groups=3,
        stride=2,
        padding=3,
    ),
    CaseSpec(
        dtype="complex64",
        kernel_size=4,
        batch_size=2,
        in_channels=4,
        out_channels=4,
        length=23,
        groups=4,
        dilation=3,
        padding=5,
    ),
    CaseSpec(
        dtype="float64",
        kernel_size=7,
        batch_size=None,
        in_channels=5,
        out_channels=3,
        length=50,
        stride=3,
        dilation=2,
    ),
    CaseSpec(
        dtype="complex128",
        kernel_size=2,
        batch_size=4,
        in_channels=2,
        out_channels=6,
        length=19,
        groups=2,
        padding="same",
        constraint=None,
    ),
    CaseSpec(
        dtype="float16",
        kernel_size=9,
        batch_size=2,
        in_channels=8,
        out_channels=8,
        length=64,
        padding=4,
    ),
    CaseSpec(
        dtype="bfloat16",
        kernel_size=3,
        batch_size=2,
        in_channels=4,
        out_channels=4,
        length=30,
        padding=1,
    ),
    CaseSpec(
        dtype="complex32",
        kernel_size=3,
        batch_size=2,
        in_channels=4,
        out_channels=2,
        length=30,
        groups=2,
    ),
]


def _problem(spec):
    g = spec.geometry
    arrays, metadata = build(spec)
    case = Fixture(spec.id, metadata, arrays)  # operands of FP8 cases decoded from their bytes
    x, d = case.input("input"), case.input("grad_output")
    if spec.batch_size is None:
        x, d = x[None], d[None]
    return (
        x,
        case.input("weight"),
        case.input("bias"),
        d,
        g,
        scales_for_geometry(g, spec.constraint, spec.scale_power),
    )


@pytest.mark.parametrize("spec", DRAWN, ids=lambda s: s.id)
def test_sliced_products_give_the_double_double_bytes(spec):
    x, w, b, d, g, scales = _problem(spec)
    old = exact.expected_results(x, w, b, d, g, scales, spec.dtype)
    new = sliced.expected_results(x, w, b, d, g, scales, spec.dtype)
    assert old.keys() == new.keys()
    for name in old:
        (value, scale), (new_value, new_scale) = old[name], new[name]
        assert value.dtype == new_value.dtype and value.tobytes() == new_value.tobytes(), name
        # The error scales: the exact sum rounded up to a few bits, from either route.
        assert bounds.round_up(scale).tobytes() == new_scale.tobytes(), name


def _digest(results):
    import hashlib

    h = hashlib.sha256()
    for name in sorted(results):
        for a in results[name]:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_same_bytes_with_one_and_two_blas_threads_and_any_blocking():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    spec = CaseSpec(
        dtype="float32",
        kernel_size=9,
        batch_size=2,
        in_channels=64,
        out_channels=64,
        length=300,
        padding="same",
    )
    x, w, b, d, g, scales = _problem(spec)
    digests = set()
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            digests.add(_digest(sliced.expected_results(x, w, b, d, g, scales)))
    digests.add(_digest(sliced.expected_results(x, w, b, d, g, scales, memory=2**16)))
    assert len(digests) == 1


def test_same_bytes_with_batch_and_channels_permuted_and_back():
    spec = CaseSpec(
        dtype="float64",
        kernel_size=3,
        batch_size=3,
        in_channels=6,
        out_channels=5,
        length=40,
        padding=1,
        stride=2,
    )
    x, w, b, d, g, scales = _problem(spec)
    base = sliced.expected_results(x, w, b, d, g, scales)
    batch, cin, cout = [2, 0, 1], [3, 5, 0, 1, 4, 2], [4, 2, 0, 3, 1]
    permuted = sliced.expected_results(
        x[batch][:, cin], w[cout][:, cin], b[cout], d[batch][:, cout], g, scales
    )
    back = {
        "output": lambda a: a[np.argsort(batch)][:, np.argsort(cout)],
        "grad_input": lambda a: a[np.argsort(batch)][:, np.argsort(cin)],
        "grad_weight": lambda a: a[np.argsort(cout)][:, np.argsort(cin)],
        "grad_bias": lambda a: a[np.argsort(cout)],
    }
    for name, undo in back.items():
        for before, after in zip(base[name], permuted[name], strict=True):
            assert undo(after).tobytes() == before.tobytes(), name


def test_inf_and_nan_inputs_land_where_the_textbook_puts_them():
    spec = CaseSpec(
        dtype="float64",
        kernel_size=3,
        batch_size=2,
        in_channels=4,
        out_channels=4,
        length=12,
        padding=2,
        stride=2,
    )
    x, w, b, d, g, scales = _problem(spec)
    x, w, d = x.copy(), w.copy(), d.copy()
    x[0, 1, 3], w[2, 0, 1], d[1, 3, 2] = np.inf, np.nan, -np.inf
    w[0, 2, 0] = np.inf  # faces the padding in the forward (0 * inf), not in dgrad
    results = sliced.expected_results(x, w, b, d, g, scales)
    with np.errstate(all="ignore"):
        reference = {
            "output": textbook.forward_sum(x, w, g) + b[None, :, None],
            "grad_input": textbook.input_grad(d, w, g),
            "grad_weight": textbook.weight_grad(d, x, g),
            "grad_bias": textbook.bias_grad(d),
        }
    finite = sliced.expected_results(
        np.nan_to_num(x, posinf=0, neginf=0),
        np.nan_to_num(w, nan=0, posinf=0),
        b,
        np.nan_to_num(d, neginf=0),
        g,
        scales,
    )
    for name, want in reference.items():
        value, error_scale = results[name]
        special = ~np.isfinite(want)
        assert special.any(), name
        np.testing.assert_array_equal(value[special], want[special] * 1.0)
        assert np.all(~np.isfinite(error_scale[special]))
        assert value[~special].tobytes() == finite[name][0][~special].tobytes(), name


def test_complex_inf_parts_keep_their_place():
    spec = CaseSpec(dtype="complex128", kernel_size=3, batch_size=1, in_channels=2,
                    out_channels=2, length=8, padding=1)  # fmt: skip
    x, w, b, d, g, scales = _problem(spec)
    x = x.copy()
    x[0, 0, 4] = complex(0.5, np.inf)
    output = sliced.expected_results(x, w, b, d, g, scales)["output"][0]
    # The definition on real parts: (wr + i wi)(xr + i xi) = (wr xr - wi xi) + i (wr xi + wi xr).
    with np.errstate(all="ignore"):
        real, imag = x.real.copy(), x.imag.copy()
        fwd = lambda a, c: textbook.forward_sum(a, c, g)  # noqa: E731
        want_real = fwd(real, w.real) - fwd(imag, w.imag) + b.real[None, :, None]
        want_imag = fwd(imag, w.real) + fwd(real, w.imag) + b.imag[None, :, None]
    assert np.isinf(want_real).any() and np.isinf(want_imag).any()
    for got, want in ((output.real, want_real), (output.imag, want_imag)):
        special = ~np.isfinite(want)
        np.testing.assert_array_equal(got[special], want[special])
        assert np.all(np.isfinite(got[~special]))


def test_committed_suite_equals_the_double_double_route():
    """Every array of every committed case, recomputed element by element without BLAS."""
    from uscale_ref.golden import store

    for case_id in store.cases():
        spec = store.spec_for(case_id)
        x, w, b, d, g, scales = _problem(spec)
        old = exact.expected_results(x, w, b, d, g, scales, spec.dtype)
        case = store.load(case_id)
        for name, (value, error_scale) in old.items():
            stored = case.arrays[name] if spec.batch_size is not None or name not in (
                "output", "grad_input") else case.arrays[name][None]  # fmt: skip
            scale = case.error_scale(name)
            if spec.batch_size is None and name in ("output", "grad_input"):
                scale = scale[None]
            assert stored.tobytes() == value.tobytes(), (case_id, name)
            assert scale.tobytes() == bounds.round_up(error_scale).tobytes(), (case_id, name)
