"""Tolerances derived from floating-point error analysis, stated once.

A sum of ``n`` products computed in floating point with unit roundoff ``u``
differs from the exact sum by at most about ``n u`` times the sum of the
absolute values of the products (Higham, *Accuracy and Stability of Numerical
Algorithms*, section 3.1), whatever the summation order. So every comparison
with an exact reference is judged against an element-wise *magnitude*
``|alpha| * (|w| * |x| + |b|)`` (the same sum made of absolute values), with
one extra ``u`` for the scale multiplication and one rounding to the output
dtype. Complex products carry about twice the real error.

The scales are float64 numbers computed through pow, divisions and means, by
uscale_ref and again by the test's reference (in a different order): each is
within a few float64 ulps of the true scale, so the two may differ by up to
about ``SCALE_ULPS`` float64 units, relative. This matters for float64 and
complex128 only.

Such a bound cannot be loosened to hide a bug: an indexing mistake changes a
result by the order of the magnitude itself, thousands of ``u`` away.
"""

from __future__ import annotations

import numpy as np


def unit_roundoff(dtype) -> float:
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def work_dtype(dtype):
    """float16 is accumulated in float32 by uscale_ref; everything else in itself."""
    return np.float32 if np.dtype(dtype) == np.float16 else dtype


# pow (<= 1 ulp), up to four divisions/additions for a mean, on both sides.
SCALE_ULPS = 12


def rounding_bound(dtype, magnitude, terms: int):
    """Element-wise bound on |computed - exact| for a result of ``terms`` products."""
    dtype = np.dtype(dtype)
    complex_factor = 2.0 if dtype.kind == "c" else 1.0
    accumulate = complex_factor * (terms + 2) * unit_roundoff(work_dtype(dtype))
    final_rounding = unit_roundoff(dtype)
    scale_difference = SCALE_ULPS * unit_roundoff(np.float64)
    bound = accumulate + final_rounding + scale_difference
    return bound * np.asarray(magnitude) + np.finfo(dtype).tiny


def assert_within_rounding(actual, exact, magnitude, dtype, terms: int, what: str = "") -> None:
    """Assert ``|actual - exact| <= rounding_bound`` everywhere, reporting the worst element."""
    actual = np.asarray(actual)
    exact = np.asarray(exact)
    assert actual.shape == exact.shape, f"{what}: shape {actual.shape} != {exact.shape}"
    error = np.abs(actual.astype(exact.dtype) - exact)
    bound = rounding_bound(dtype, magnitude, terms)
    ratio = error / bound
    worst = np.unravel_index(np.argmax(ratio), ratio.shape) if ratio.size else ()
    assert np.all(error <= bound), (
        f"{what}: error {error[worst]:.3g} at {worst} exceeds the rounding bound "
        f"{bound[worst]:.3g} ({ratio[worst]:.1f}x; exact {exact[worst]!r}, got {actual[worst]!r})"
    )


def relative_error_in_units(actual, exact, magnitude, dtype) -> float:
    """Largest error measured in units of ``u(dtype) * magnitude`` (for reports)."""
    error = np.abs(np.asarray(actual).astype(np.asarray(exact).dtype) - exact)
    return float(np.max(error / (unit_roundoff(dtype) * np.asarray(magnitude) + 1e-300)))
