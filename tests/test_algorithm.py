"""Fast algorithms (an FFT convolution, Winograd's minimal filtering): named as such, and
held to their normwise bounds when they say so."""

from __future__ import annotations

import numpy as np
import pytest
import winograd

import uscale_ref
from uscale_ref.golden import CaseSpec
from uscale_ref.testing import assert_conv1d

sf = pytest.importorskip("scipy.fft")
# Long rows and few terms per element: where an FFT's normwise error exceeds what
# direct sums may cost element by element.
SPECS = [
    CaseSpec(dtype="float32", batch_size=2, in_channels=2, length=4096, out_channels=2,
             kernel_size=2, padding=1),
    CaseSpec(dtype="float32", batch_size=2, in_channels=1, length=4096, out_channels=1,
             kernel_size=3, padding=1),
]  # fmt: skip


def fft_forward(x, w, b, **kwargs):
    """A correlation by real FFTs in float32 (scipy.fft keeps single precision)."""
    shape = {k: kwargs[k] for k in ("stride", "padding", "dilation", "groups")}
    geometry = uscale_ref.conv1d_geometry(x.shape, w.shape, **shape)
    batch = x if x.ndim == 3 else x[None]
    padded = np.pad(batch, ((0, 0), (0, 0), (geometry.pad_left, geometry.pad_right)))
    taps = w.shape[-1]
    size = 1 << (padded.shape[-1] + taps).bit_length()
    product = np.einsum("ncf,ocf->nof", sf.rfft(padded, size, axis=-1),
                        sf.rfft(w[..., ::-1], size, axis=-1))  # fmt: skip
    y = sf.irfft(product, size, axis=-1)[..., taps - 1 : taps - 1 + geometry.out_length]
    scale = uscale_ref.conv1d_scales(x.shape, w.shape, **kwargs).output
    y = ((y + b[:, None]) * np.float32(scale)).astype(x.dtype)
    return y if x.ndim == 3 else y[0]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_an_fft_kernel_is_named_and_passes_when_it_says_so(spec):
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(fft_forward, cases=[spec], drawn=0)
    assert "likely cause: output: errors bounded by the rows' norms" in str(failure.value)
    assert "algorithm='fft'" in str(failure.value)
    report = assert_conv1d(fft_forward, cases=[spec], drawn=0, algorithm="fft")
    assert report.cases == 1


def test_the_fft_bound_still_catches_a_wrong_scale():
    def off(x, w, b, **kwargs):
        return (fft_forward(x, w, b, **kwargs) * np.float32(1 + 1e-4)).astype(x.dtype)

    with pytest.raises(AssertionError, match=r"a scale off by a factor 1 \+ 1.0e-04"):
        assert_conv1d(off, cases=[SPECS[0]], drawn=0, algorithm="fft")


def test_a_direct_kernel_is_not_named_an_fft():
    def noisy(x, w, b, **kwargs):
        y = uscale_ref.conv1d(x, w, b, **kwargs).astype(np.float64)
        return (y * (1 + 1e-5 * np.random.default_rng(0).standard_normal(y.shape))).astype(x.dtype)

    with pytest.raises(AssertionError) as failure:
        assert_conv1d(noisy, cases=[SPECS[0]], drawn=0)
    assert "rows' norms" not in str(failure.value)


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algorithm must be one of"):
        assert_conv1d(fft_forward, cases=[SPECS[0]], drawn=0, algorithm="strassen")


def test_a_compact_fixtures_norms_are_the_whole_fixtures_at_its_positions(tmp_path):
    from dataclasses import replace

    from uscale_ref.golden import CaseSpec
    from uscale_ref.golden.fixture import Fixture, build
    from uscale_ref.verdict.algorithm import normwise

    spec = CaseSpec("float32", kernel_size=3, batch_size=3, in_channels=4, out_channels=6,
                    length=50, padding="same", groups=2)  # fmt: skip
    whole = Fixture(spec.id, *build(spec)[::-1])
    compact_spec = replace(spec, compact=30)
    compact = Fixture(compact_spec.id, *build(compact_spec)[::-1])
    for name in ("output", "grad_input", "grad_weight", "grad_bias"):
        at = compact.positions(name)
        np.testing.assert_allclose(normwise(compact, name), normwise(whole, name)[at], rtol=1e-12)
    assert "_drawn" not in compact.__dict__ or "input" not in compact.__dict__["_drawn"]


# -- Winograd --------------------------------------------------------------------------------

# Few channels and taps per element, long rows: where a tile's transforms cost more than
# direct sums may, element by element.
WINOGRAD_SPEC = CaseSpec(dtype="float32", batch_size=2, in_channels=2, length=4096,
                         out_channels=2, kernel_size=3, padding=1)  # fmt: skip


@pytest.mark.parametrize("tile", [4, 6])
def test_a_winograd_kernel_is_named_with_its_tile_and_passes_when_it_says_so(tile):
    forward, backward = winograd.kernel(tile)
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(forward, backward, cases=[WINOGRAD_SPEC], drawn=0)
    text = str(failure.value)
    assert "likely cause: output, grad_input: errors bounded by the norms of each tile" in text
    assert f"tiles of {tile} outputs (Winograd's minimal filtering)" in text
    assert "algorithm='winograd'" in text
    report = assert_conv1d(forward, backward, cases=[WINOGRAD_SPEC], drawn=0,
                           algorithm="winograd")  # fmt: skip
    assert report.cases == 1


def test_the_winograd_kernel_is_a_convolution():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 40)), rng.standard_normal((4, 3, 3))
    b, g = rng.standard_normal(4), rng.standard_normal((2, 4, 40))
    kwargs = {"stride": 1, "padding": "same", "dilation": 1, "groups": 1}
    for tile in (2, 4, 6):
        forward, backward = winograd.kernel(tile)
        np.testing.assert_allclose(forward(x, w, b, **kwargs), uscale_ref.conv1d(x, w, b, **kwargs),
                                   rtol=1e-12, atol=1e-12)  # fmt: skip
        np.testing.assert_allclose(backward(g, x, w, b, **kwargs).grad_input,
                                   uscale_ref.conv1d_backward(g, x, w, b, **kwargs).grad_input,
                                   rtol=1e-12, atol=1e-12)  # fmt: skip


def test_the_winograd_bound_still_catches_a_wrong_scale():
    forward, backward = winograd.kernel(4)

    def off(x, w, b, **kwargs):
        return (forward(x, w, b, **kwargs) * np.float32(1 + 1e-4)).astype(x.dtype)

    with pytest.raises(AssertionError, match=r"a scale off by a factor 1 \+ 1.0e-04"):
        assert_conv1d(off, backward, cases=[WINOGRAD_SPEC], drawn=0, algorithm="winograd")


def test_direct_kernels_show_no_tile():
    """uscale_ref itself, noisy: no period in its errors' size, so no Winograd named."""

    def noisy(x, w, b, **kwargs):
        y = uscale_ref.conv1d(x, w, b, **kwargs).astype(np.float64)
        return (y * (1 + 1e-5 * np.random.default_rng(0).standard_normal(y.shape))).astype(x.dtype)

    with pytest.raises(AssertionError) as failure:
        assert_conv1d(noisy, cases=[WINOGRAD_SPEC], drawn=0)
    assert "Winograd" not in str(failure.value)


def _window_norms_by_loops(fixture, name):
    """``|s| sum_c ||x_c[window]|| ||w_c||`` by loops: the window the span of the inputs
    any element within seven positions of this one reads (for grad_input: the
    grad_output positions that reach it, seven more either side)."""
    geo = fixture.spec.geometry
    x, w, g = (fixture.input(k).astype(np.float64) for k in ("input", "weight", "grad_output"))
    s, d, pad, taps = geo.stride, geo.dilation, geo.pad_left, geo.kernel_size
    per_group, fan_in = geo.out_channels // geo.groups, geo.in_channels // geo.groups
    out = np.zeros(fixture.result_shape(name))
    for n, row, at in np.ndindex(*out.shape):
        total = 0.0
        if name == "output":
            reached = [q * s + k * d - pad for q in range(at - 7, at + 8) for k in range(taps)]
            lo, hi = max(0, min(reached)), min(geo.in_length, max(reached) + 1)
            group = row // per_group
            for i in range(fan_in):
                window = x[n, group * fan_in + i, lo:hi]
                total += np.sqrt(np.sum(window**2)) * np.sqrt(np.sum(w[row, i] ** 2))
        else:
            reaching = [q for q in range(-taps - 1, geo.out_length + taps) for k in range(taps)
                        if q * s + k * d - pad == at]  # fmt: skip
            lo, hi = max(0, min(reaching) - 7), min(geo.out_length, max(reaching) + 8)
            group, i = divmod(row, fan_in)
            for j in range(per_group):
                o = group * per_group + j
                window = g[n, o, lo:hi]
                total += np.sqrt(np.sum(window**2)) * np.sqrt(np.sum(w[o, i] ** 2))
        out[n, row, at] = total * abs(fixture.metadata["scales"][name])
    return out.reshape(-1)


@pytest.mark.parametrize("steps", [{"stride": 2}, {"dilation": 2}, {}], ids=str)
def test_the_winograd_windows_are_those_the_loops_give(steps):
    from dataclasses import replace

    from uscale_ref.golden.fixture import Fixture, build
    from uscale_ref.verdict.algorithm import normwise

    spec = CaseSpec("float32", kernel_size=3, batch_size=2, in_channels=4, out_channels=6,
                    length=40, padding="same" if not steps.get("stride") else 1, groups=2,
                    **steps)  # fmt: skip
    whole = Fixture(spec.id, *build(spec)[::-1])
    compact_spec = replace(spec, compact=30)
    compact = Fixture(compact_spec.id, *build(compact_spec)[::-1])
    for name in ("output", "grad_input"):
        expected = _window_norms_by_loops(whole, name)
        np.testing.assert_allclose(normwise(whole, name, "winograd"), expected, rtol=1e-12)
        at = compact.positions(name)
        np.testing.assert_allclose(normwise(compact, name, "winograd"), expected[at], rtol=1e-12)


def test_a_narrow_running_sum_over_long_sums_is_not_named_a_fast_algorithm():
    """grad_weight of a depthwise bfloat16 case summed in bfloat16 over N L terms: its errors
    follow the partial sums, not the element, as a transform's do; in a narrow format the
    running sum is the likelier cause, and is named."""
    pytest.importorskip("ml_dtypes")
    from calibration import sequential, summed_kernel, to_format

    from uscale_ref import golden
    from uscale_ref.golden.fixture import Fixture, build
    from uscale_ref.verdict import judge
    from uscale_ref.verdict.diagnosis import explain

    spec = CaseSpec("bfloat16", batch_size=4, in_channels=32, out_channels=32, length=2048,
                    kernel_size=4, groups=32, padding="same")  # fmt: skip
    case = Fixture(spec.id, *build(spec)[::-1])

    def narrow(t):
        return to_format(t, "bfloat16")

    results = summed_kernel(case, lambda terms: sequential(terms, narrow))
    verdict = judge(case, results, keep=True)
    assert not verdict.passed
    explain(verdict, case, results)
    assert "bfloat16" in verdict.cause and "fast algorithm" not in verdict.cause
    del golden
