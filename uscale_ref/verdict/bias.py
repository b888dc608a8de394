"""The errors' bias: is the result a little too large or too small all over (a wrong scale)?

A correct kernel's rounding errors ``r_i`` have no preferred sign relative
to the expected values ``e_i``; a scale off by a factor ``1 + beta`` adds
``beta e_i`` to every one. Within each row (channel) the expected values
are centred, ``e~_i = e_i - mean(e)``, so that a constant offset of the row
(the bias term rounded on its own) cannot pose as a scale, and

    beta = sum_i r_i e~_i / sum_i |e~_i|^2

estimates the relative scale error (real parts of ``r conj(e~)`` for
complex). Its test against an allowed value ``delta`` is the self-normalized
sum

    z = sum_i a_i / sqrt(sum_i a_i^2),    a_i = Re((r_i - delta e_i) conj(e~_i)),

which, for independent errors symmetric about zero, exceeds ``t`` in size
with probability at most ``2 exp(-t^2 / 2)`` whatever their sizes and
however many there are (Hoeffding's inequality on random signs). An array
fails when ``|z|`` exceeds :data:`~uscale_ref.tolerance.rule.Z_LIMIT` for every
allowed ``delta`` (:meth:`Rule.allowed_scale_errors`), over the whole array
or in any row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..tolerance.conventions import centred
from ..tolerance.layout import Groups

__all__ = ["BiasFigure", "bias_figure", "centred"]

Float = npt.NDArray[np.float64]
Intervals = list[tuple[float, float]]


@dataclass(frozen=True)
class _Sums:
    """Per group: ``N = sum a``, ``E = sum c``, ``Saa``, ``Sac``, ``Scc`` with ``a = Re(r conj e~)``
    and ``c = Re(e conj e~)`` (so that ``a - delta c`` is the residual's term)."""

    n: Float
    e: Float
    aa: Float
    ac: Float
    cc: Float

    def estimate(self) -> Float:
        with np.errstate(all="ignore"):
            return np.where(self.e > 0, self.n / self.e, 0.0)

    def standard_error(self) -> Float:
        beta = self.estimate()
        spread = np.maximum(self.aa - 2 * beta * self.ac + beta * beta * self.cc, 0.0)
        with np.errstate(all="ignore"):
            return np.where(self.e > 0, np.sqrt(spread) / self.e, np.inf)

    def z(self, allowed: Intervals) -> Float:
        """The smallest ``|z|`` over the allowed intervals, per group."""
        beta = self.estimate()
        best = np.full(beta.shape, np.inf)
        for low, high in allowed:
            delta = np.clip(beta, low, high)
            numerator = np.where((low <= beta) & (beta <= high), 0.0, self.n - delta * self.e)
            spread = np.maximum(self.aa - 2 * delta * self.ac + delta * delta * self.cc, 0.0)
            with np.errstate(all="ignore"):
                z = np.where(numerator == 0, 0.0, np.abs(numerator) / np.sqrt(spread))
            z[np.isnan(z)] = 0.0
            best = np.minimum(best, z)
        best[self.e <= 0] = 0.0
        return best


@dataclass(frozen=True)
class BiasFigure:
    """The relative scale error the errors show, over the array and per row.

    Attributes
    ----------
    estimate, standard_error : float
        ``beta`` over the whole array and its standard error.
    z : float
        Standard errors between ``beta`` and the nearest allowed value.
    allowed : list of (float, float)
        The allowed intervals of ``beta``.
    row_estimates, row_z : ndarray
        The same per row (channel).
    limit : float
        The largest ``z`` that passes.
    """

    estimate: float
    standard_error: float
    z: float
    allowed: Intervals
    row_estimates: Float
    row_z: Float
    limit: float

    @property
    def passed(self) -> bool:
        return bool(self.z <= self.limit and np.all(self.row_z <= self.limit))

    @property
    def worst_row(self) -> int:
        return int(np.argmax(self.row_z)) if self.row_z.size else 0

    def allowed_text(self) -> str:
        parts = []
        for low, high in self.allowed:
            centre, width = (low + high) / 2, (high - low) / 2
            parts.append(f"{centre:+.2g} ± {width:.1g}" if centre else f"0 ± {width:.1g}")
        return " or ".join(parts)


def bias_figure(
    difference: npt.NDArray[Any],
    expected: npt.NDArray[Any],
    groups: Groups,
    allowed: Intervals,
    limit: float,
    row_allowed: Intervals | None = None,
) -> BiasFigure:
    """The :class:`BiasFigure` of ``actual - expected`` (``difference``, 0 where they agree),
    one value per element of ``groups``.

    ``allowed``: the intervals of the scale error the whole array may show;
    ``row_allowed`` (default the same): each row's.
    """
    rows = groups.layout.canonical[1]
    r, e = np.asarray(difference).reshape(-1), np.asarray(expected).reshape(-1)
    usable = np.isfinite(r) & np.isfinite(e)
    r, e = np.where(usable, r, 0), np.where(usable, e, 0)
    weights = centred(np.where(usable, e, np.nan), groups.row, rows)
    a = np.real(r * np.conj(weights))
    c = np.real(e * np.conj(weights))
    sums = [
        np.bincount(groups.row, weights=v, minlength=rows).astype(np.float64)
        for v in (a, c, a * a, a * c, c * c)
    ]
    per_row = _Sums(*sums)
    totals = (per_row.n, per_row.e, per_row.aa, per_row.ac, per_row.cc)
    whole = _Sums(*(np.array([v.sum()]) for v in totals))
    estimate, standard_error = float(whole.estimate()[0]), float(whole.standard_error()[0])
    return BiasFigure(
        estimate=estimate,
        standard_error=standard_error if math.isfinite(standard_error) else math.inf,
        z=float(whole.z(allowed)[0]),
        allowed=allowed,
        row_estimates=per_row.estimate(),
        row_z=per_row.z(row_allowed or allowed) if groups.layout.row is not None else np.zeros(0),
        limit=limit,
    )
