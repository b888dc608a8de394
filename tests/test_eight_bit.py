"""The 8-bit formats held to independent implementations: ml_dtypes for the OCP ones (values
and bytes), unit_scaling's own ``FPFormat`` for its E4M3 and E5M2 (largest 240 and 57344,
saturating, ties toward zero)."""

from __future__ import annotations

import numpy as np
import pytest

from uscale_ref.formats import EIGHT_BIT, FORMATS, from_bits, round_to, to_bits


def _probes() -> np.ndarray:
    """Random values over every binade of the formats, ties of each, and the edges."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal(20000) * np.exp2(rng.integers(-20, 18, 20000))
    grid = np.concatenate([np.arange(1, 32) / 16.0 * 2.0**k for k in range(-18, 17)])
    ties = (grid[:-1] + grid[1:]) / 2
    edges = [0.0, 240.0, 247.9, 248.0, 250.0, 448.0, 464.0, 465.0, 57344.0, 61440.0, 1e6,
             2.0**-10, 2.0**-11, 3 * 2.0**-11, 2.0**-17, 2.0**-18, 1e-9]  # fmt: skip
    both = np.concatenate([values, grid, ties, edges])
    return np.concatenate([both, -both]).astype(np.float32)


@pytest.mark.parametrize("format", ["float8_e4m3fn", "float8_e5m2"])
def test_ocp_formats_match_ml_dtypes(format):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    kind = getattr(ml_dtypes, format)
    x = _probes()
    theirs = x.astype(kind)
    np.testing.assert_array_equal(round_to(x, format), theirs.astype(np.float32))
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(from_bits(codes, format), codes.view(kind).astype(np.float32))
    finite = np.isfinite(theirs.astype(np.float32))
    np.testing.assert_array_equal(to_bits(round_to(x, format)[finite], format),
                                  theirs[finite].view(np.uint8))  # fmt: skip


@pytest.mark.parametrize("format, bits", [("unit_scaling_e4m3", (4, 3)),
                                          ("unit_scaling_e5m2", (5, 2))])  # fmt: skip
def test_unit_scaling_formats_match_its_fpformat(format, bits):
    torch = pytest.importorskip("torch")
    formats = pytest.importorskip("unit_scaling.formats")
    theirs = formats.FPFormat(*bits, rounding="nearest")
    x = np.concatenate([_probes(), np.array([np.inf, -np.inf], dtype=np.float32)])
    expected = theirs.quantise(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(round_to(x, format), expected)
    spec = FORMATS[format]
    assert spec.largest == theirs.max_absolute_value
    assert spec.smallest_normal == theirs.min_absolute_normal


@pytest.mark.parametrize("format", EIGHT_BIT)
def test_bytes_round_trip_every_code(format):
    codes = np.arange(256, dtype=np.uint8)
    values = from_bits(codes, format)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(to_bits(values[finite], format), codes[finite])
    # Every finite code is a number of the format: rounding leaves it as it is.
    np.testing.assert_array_equal(round_to(values[finite], format), values[finite])


def test_bytes_refuse_what_is_not_in_the_format():
    with pytest.raises(ValueError, match="is not a float8_e4m3fn number"):
        to_bits(np.array([1.0, 1.01]), "float8_e4m3fn")
    with pytest.raises(ValueError, match="unit_scaling_e4m3 has no NaN"):
        to_bits(np.array([np.nan]), "unit_scaling_e4m3")
    with pytest.raises(ValueError, match="format must be one of"):
        from_bits(np.zeros(2, dtype=np.uint8), "bfloat16")
    with pytest.raises(TypeError, match="codes must be uint8"):
        from_bits(np.zeros(2, dtype=np.int32), "float8_e5m2")
