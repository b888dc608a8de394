"""uscale_ref.formats against ml_dtypes (where installed) and against float32 bit arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from uscale_ref.formats import FORMATS, round_to

SPECIALS = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 448, 464, 465, 480, 57344, 61440, 65504,
     65520, 3.4e38, 1e-45, 2**-9, 2**-10, 3 * 2**-11, 2**-16, 2**-17, 1.5 * 2**-17],
    dtype=np.float32,
)  # fmt: skip


def _samples(rng):
    scales = [1, 1e-3, 1e-6, 100, 1e4, 1e30, 1e-30, 2**-14, 2**-126]
    parts = [SPECIALS] + [(rng.standard_normal(4000) * s).astype(np.float32) for s in scales]
    return np.concatenate(parts)


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float8_e5m2", "float8_e4m3fn"])
def test_matches_ml_dtypes(name, rng):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    target = np.float16 if name == "float16" else getattr(ml_dtypes, name)
    x = _samples(rng)
    with np.errstate(over="ignore"):
        theirs = x.astype(target).astype(np.float32)
    ours = round_to(x, name)
    np.testing.assert_array_equal(ours, theirs)  # NaN where NaN, same zeros and infinities
    finite = np.isfinite(ours)
    np.testing.assert_array_equal(np.signbit(ours[finite]), np.signbit(theirs[finite]))


def _tf32_by_bits(x, toward_zero=False):
    """TF32 from float32 bits: keep 10 of the 23 mantissa bits (ties to even, or truncate)."""
    bits = x.view(np.uint32).astype(np.uint64)
    if not toward_zero:
        bits = bits + 0xFFF + ((bits >> 13) & 1)
    return ((bits >> 13) << 13).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("rounding", ["nearest", "toward_zero"])
def test_tf32_matches_float32_bit_arithmetic(rounding, rng):
    x = _samples(rng)
    x = x[np.isfinite(x) & (np.abs(x) < 3e38)]  # the bit trick carries into inf near the top
    expected = _tf32_by_bits(x, toward_zero=rounding == "toward_zero")
    np.testing.assert_array_equal(round_to(x, "tf32", rounding), expected)


def test_float64_input_stays_float64_and_is_rounded_the_same(rng):
    x = _samples(rng)
    ours = round_to(x.astype(np.float64), "float16")
    assert ours.dtype == np.float64
    np.testing.assert_array_equal(ours.astype(np.float32), round_to(x, "float16"))


@pytest.mark.parametrize("name", list(FORMATS))
def test_limits_are_fixed_points(name):
    spec = FORMATS[name]
    values = np.array([spec.largest, spec.smallest_normal, spec.smallest_subnormal], np.float64)
    np.testing.assert_array_equal(round_to(values, name), values)
    half_tiny = np.array([spec.smallest_subnormal / 2], np.float64)
    assert round_to(half_tiny, name)[0] == 0.0  # a tie rounds to the even neighbour, zero


def test_overflow_and_specials():
    x = np.array([1e6, -1e6, np.inf, np.nan], dtype=np.float32)
    assert np.isnan(round_to(x, "float8_e4m3fn")).all()
    np.testing.assert_array_equal(round_to(x, "float8_e5m2")[:3], [np.inf, -np.inf, np.inf])


def test_bad_arguments():
    with pytest.raises(ValueError, match="format must be one of"):
        round_to(np.ones(2, np.float32), "float4")
    with pytest.raises(ValueError, match="rounding must be"):
        round_to(np.ones(2, np.float32), "tf32", "up")
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        round_to(np.ones(2, np.int32), "tf32")
