"""Where a correct kernel's errors may be centred: the rounding conventions of the scale.

In a format narrower than its accumulator (float16, bfloat16, complex32) a
correct kernel may

* round ``s * D`` once (``D`` the exact sum, ``s`` the scale): no bias;
* round the scale to the format first, ``round(round(s) * D)``: a bias of
  ``round(s) / s - 1``, up to a unit roundoff;
* round the sum first and then multiply, ``round(s32 * round(D))`` (upstream's
  forward, with the scale as a float32), or ``round(round(s) * round(D))``
  (upstream's backward, with the scale as a tensor of the input's dtype).

Rounding twice through a multiplication has a bias of its own, up to about
half a unit roundoff depending on the scale's digits and the values (the two
grids alias), and a scale error of a fraction of a unit roundoff is only
visible against it. So the fixture generator, which holds the exact sums,
computes each convention's result and its relative scale error ``beta``
exactly (:func:`convention_centres`), and the bias check accepts a kernel
whose ``beta`` sits on one of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .layout import Groups
from .rule import OUTPUT_FORMAT, UNIT_ROUNDOFF

__all__ = ["centred", "convention_centres", "narrow"]


def narrow(dtype: str) -> bool:
    """Whether ``dtype``'s output format is narrower than its default accumulation's."""
    return OUTPUT_FORMAT[dtype] in ("float16", "bfloat16")


def _round(values: npt.NDArray[Any], format: str) -> npt.NDArray[Any]:
    """``values`` (float64 or complex128) rounded part by part to ``format``, to nearest."""
    from ..formats import round_to

    if np.iscomplexobj(values):
        return _round(values.real, format) + 1j * _round(values.imag, format)
    if format == "float16":
        return values.astype(np.float16).astype(np.float64)
    return round_to(values.astype(np.float64), format)


def _beta(result: npt.NDArray[Any], expected: npt.NDArray[Any], groups: Groups) -> float:
    """The relative scale error of ``result`` against ``expected``, as the bias check sees it."""
    r, e = (result - expected).reshape(-1), expected.reshape(-1)
    weights = centred(e, groups.row, groups.layout.canonical[1])
    with np.errstate(all="ignore"):
        numerator = float(np.sum(np.real(r * np.conj(weights))))
        denominator = float(np.sum(np.abs(weights) ** 2))
    return numerator / denominator if denominator > 0 else 0.0


def centred(e: npt.NDArray[Any], row: npt.NDArray[np.int64], rows: int) -> npt.NDArray[Any]:
    """``e`` less the mean of its row's finite elements (``row``: each element's row); 0 where
    ``e`` is not finite."""
    usable = np.isfinite(e)
    values = np.where(usable, e, 0)
    counts = np.bincount(row[usable], minlength=rows)
    if np.iscomplexobj(values):
        totals = np.bincount(row, weights=values.real, minlength=rows) + 1j * np.bincount(
            row, weights=values.imag, minlength=rows
        )
    else:
        totals = np.bincount(row, weights=values, minlength=rows)
    mean = totals / np.maximum(counts, 1)
    result: npt.NDArray[Any] = np.where(usable, values - mean[row], 0)
    return result


def convention_centres(
    expected: npt.NDArray[Any],
    unscaled: npt.NDArray[Any],
    scale: float,
    dtype: str,
    groups: Groups,
) -> list[float]:
    """The relative scale errors of the conventions above on this array, 0 first.

    ``expected`` is ``round(scale * D)``, ``unscaled`` is ``round(D)``, both in
    the case's storage dtype, one value per element of ``groups``; every product
    here is exact in float64 (``round(s)`` and the values have at most 24
    significant bits between them).
    """
    if not narrow(dtype) or expected.size == 0 or not np.isfinite(scale) or scale == 0:
        return [0.0]
    format = OUTPUT_FORMAT[dtype]
    wide = np.complex128 if np.iscomplexobj(expected) else np.float64
    e, held = expected.astype(wide), unscaled.astype(wide)
    usable = np.isfinite(e) & np.isfinite(held)
    e, held = np.where(usable, e, 0), np.where(usable, held, 0)
    rounded_scale = float(_round(np.array([scale]), format)[0])
    scale32 = float(np.float32(scale))
    centres = [0.0, rounded_scale / scale - 1.0]
    with np.errstate(all="ignore"):
        for factor in (scale32, rounded_scale):
            centres.append(_beta(_round(factor * held, format), e, groups))
    # Near-duplicates add nothing: keep centres a sixty-fourth of a unit roundoff apart.
    kept: list[float] = []
    for centre in centres:
        if all(abs(centre - k) > UNIT_ROUNDOFF[format] / 64 for k in kept):
            kept.append(centre)
    return kept
