"""Tolerances derived from floating-point error analysis, stated once.

A sum of ``n`` products computed in floating point with unit roundoff ``u``
differs from the exact sum by at most about ``n u`` times the sum of the
absolute values of the products (Higham, *Accuracy and Stability of Numerical
Algorithms*, section 3.1), whatever the summation order. So every comparison
with an exact reference is judged against an element-wise *magnitude*
``|alpha| * (|w| * |x| + |b|)`` (the same sum made of absolute values), with
one extra ``u`` for the scale multiplication and one rounding to the output
dtype. Complex products carry about twice the real error.

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


def rounding_bound(dtype, magnitude, terms: int):
    """Element-wise bound on |computed - exact| for a result of ``terms`` products."""
    dtype = np.dtype(dtype)
    complex_factor = 2.0 if dtype.kind == "c" else 1.0
    accumulate = complex_factor * (terms + 2) * unit_roundoff(work_dtype(dtype))
    final_rounding = unit_roundoff(dtype)
    return (accumulate + final_rounding) * np.asarray(magnitude) + np.finfo(dtype).tiny


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
