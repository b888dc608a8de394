"""An FFT convolution: named as such, and held to its normwise bound when it says so."""

from __future__ import annotations

import numpy as np
import pytest

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
        assert_conv1d(fft_forward, cases=[SPECS[0]], drawn=0, algorithm="winograd")


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
