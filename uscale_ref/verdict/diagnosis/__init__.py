"""Naming the likely mistake behind a failing result, and how large it is.

Each failing array is examined on its own (:mod:`.evidence`): its errors on
every judged element, against the yardstick of a correct kernel, and a
sample of a few hundred positions, the worst first. The causes are tried in
this order, and the first that explains the array is named:

1. a classic mistake of the sums (:data:`MISTAKES`: padding, conjugates, the
   taps' order or one left out, the bias, the groups' channels, stride and
   dilation, a shift, narrow inputs): the mistake's result is computed at the
   sampled positions only (:mod:`.terms`) and the kernel's must match it
   there (the bound doubled, measured on the mistake's own terms), while
   differing from the right one; of several, the closest;
2. a part of the array wrong and the rest right (batch items, channels,
   taps, positions), with the mistake or the factor that part is off by
   when one explains it;
3. a scale: the factor the errors show (with its standard error), the same
   over every part, is removed and the rest must be right; a factor that a
   wrong scale rule gives (a scale missing or applied twice, another
   constraint, scale powers misapplied, a mean for a sum) is named as such;
4. errors bounded by the rows' norms, as a fast (FFT) algorithm's are
   (:mod:`uscale_ref.verdict.algorithm`);
5. sums kept in fewer bits than the rule allows: the width read from the
   grid the sums lie on, or from the size of the errors
   (:mod:`.arithmetic`);
6. otherwise :data:`NO_CAUSE`, with what the evidence shows.

Nothing here computes a whole layer: a failing verdict costs about what a
passing one does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ...tolerance.layout import describe_indices
from ...tolerance.rule import MARGIN_BITS, Rule, rule_for
from ..case import CaseVerdict
from ..precision import ratios
from ..report import ArrayReport, difference, with_reference
from . import arithmetic
from .catalogue import MISTAKES, Mistake, ScaleMistake, rounding, scale_candidates, swapped_groups
from .evidence import WORST, WRONG_SQUARES, Evidence, Part, evidence, fit, uniform, wrong_part
from .terms import Terms, Variant, terms_for

if TYPE_CHECKING:
    from ...golden.fixture import Fixture

__all__ = ["MISTAKES", "NO_CAUSE", "Mistake", "diagnose", "explain"]

NO_CAUSE = "no single known mistake explains this"
#: The worst sampled positions a mistake is tried on first (most fail there at once) ...
HEAD = 16
#: ... fewer where each sums many terms (grad_weight's run over the batch and length):
#: about this many terms in all, and at least :data:`HEAD_LEAST` positions.
HEAD_TERMS = 2**17
HEAD_LEAST = 4
#: The terms a mistake is computed from, about, on the whole sample.
TERMS = 2**19
#: Sampled positions a mistake is tried on inside a wrong part ...
SAMPLE_INSIDE = 128
#: ... which must hold at least this many judged elements for a mistake to be named.
LEAST_INSIDE = 16
#: A scale factor is told from zero when this many standard errors away.
SIGNIFICANT = 8.0
#: Format names of accumulator widths, for the words.
_WIDTHS = {8: "bfloat16", 11: "float16", 24: "float32", 53: "float64"}


def _terms(case: Fixture) -> Terms:
    return terms_for(case)


# -- matching a prediction ---------------------------------------------------------------------


def fits(
    ev: Evidence,
    index: npt.NDArray[np.int64],
    predicted: npt.NDArray[Any],
    magnitude: npt.NDArray[np.float64],
    rule: Rule | None = None,
) -> bool:
    """Whether the kernel's values at ``index`` pass as a result whose exact values are
    ``predicted`` (:func:`misfit`)."""
    return misfit(ev, index, predicted, magnitude, rule) is not None


def misfit(
    ev: Evidence,
    index: npt.NDArray[np.int64],
    predicted: npt.NDArray[Any],
    magnitude: npt.NDArray[np.float64],
    rule: Rule | None = None,
) -> float | None:
    """Whether the kernel's values at ``index`` (into the judged elements) pass as a
    result whose exact values are ``predicted``: within twice the bound (the kernel's own
    rounding comes on top), measured on ``magnitude`` (at least the case's error scale),
    and no less precise than the precision check asks."""
    rule = rule or ev.rule
    with np.errstate(all="ignore"):
        error = np.abs(difference(ev.kernel[index], predicted))
        scale = np.maximum(magnitude, ev.error_scale[index])
        rounded = np.maximum(ev.rounded[index], np.abs(predicted))
        norms = None if ev.normwise is None else ev.normwise[index]
        bound = 2 * rule.bound(ev.terms, scale, rounded, ev.scale, norms)
        if not np.all((error <= bound) | (error == 0)):
            return None
        ratio = ratios(error, rule.yardstick(ev.terms, scale, rounded, ev.scale, norms))
    squares = float(np.mean(ratio * ratio)) if ratio.size else 0.0
    return squares if squares <= WRONG_SQUARES else None


def _visible(ev: Evidence, index: npt.NDArray[np.int64], predicted: npt.NDArray[Any]) -> bool:
    """Whether ``predicted`` is itself wrong, as the verdict sees it: beyond the bound
    somewhere, less precise than the precision check allows, or leaning one way by more
    than a quarter of the output's unit roundoff (as results rounded toward zero do)."""
    if index.size == 0:
        return False
    with np.errstate(all="ignore"):
        expected = ev.expected[index]
        shift = difference(predicted, expected)
        change = np.abs(shift)
        ratio = ratios(change, ev.yardstick[index])
        if np.any(change > ev.bound[index]) or np.mean(ratio * ratio) > WRONG_SQUARES:
            return True
        finite = np.isfinite(shift) & np.isfinite(expected)
        weight = float(np.sum(np.abs(expected[finite]) ** 2))
        lean = float(np.sum(np.real(shift[finite] * np.conj(expected[finite])))) / weight
    return bool(weight > 0 and abs(lean) > ev.rule.u_out / 4)


def _makes(
    ev: Evidence,
    terms: Terms,
    variant: Variant,
    rule: Rule | None = None,
    edge: int = 0,
    sample: npt.NDArray[np.int64] | None = None,
) -> float | None:
    """How closely a kernel forming ``variant``'s terms gives this array (the mean square
    of the errors from it, in yardsticks), or None where it does not: tried on the worst
    positions first, then on the whole sample. ``edge``: leave out the first (1) or last
    (-1) position of each row, where a shifted result holds what the kernel rolled in."""
    if sample is None:
        sample = _subsample(ev, terms)
    if edge:
        position = ev.groups.coords[-1][sample]
        last = ev.groups.layout.shape[-1] - 1
        sample = sample[position != (0 if edge > 0 else last)]
    squares = None
    if sample.size == 0:
        return None
    head = max(HEAD_LEAST, min(HEAD, HEAD_TERMS // max(1, terms.term_count(ev.name))))
    for index in (sample[:head], sample):
        predicted, magnitude = terms.evaluate(ev.name, ev.groups.flat[index], variant)
        squares = misfit(ev, index, predicted, magnitude, rule)
        if squares is None:
            return None
    if _visible(ev, sample, predicted):
        return squares
    # Wrong in a few tiles only (a rare value mishandled, say): the mistake must give the
    # kernel's values there too, and be as wrong there as the kernel is.
    inside = _wrong_tiles(ev)
    if inside.size == 0:
        return None
    predicted, magnitude = terms.evaluate(ev.name, ev.groups.flat[inside], variant)
    if misfit(ev, inside, predicted, magnitude, rule) is None:
        return None
    return squares if _tiles_wrong(ev, inside, predicted) else None


#: The share of an array's tiles that may be wrong for :func:`_wrong_tiles` to name them
#: (beyond it the sample shows what is wrong).
FEW_TILES = 0.05


def _wrong_tiles(ev: Evidence) -> npt.NDArray[np.int64]:
    """The elements (at most :data:`SAMPLE_INSIDE`) of the tiles where the kernel's errors'
    mean square exceeds a correct kernel's by the precision check's margin, when those are
    a few (:data:`FEW_TILES`) of the tiles; none otherwise. Found once per array."""
    if "wrong tiles" not in ev._cache:
        tile = ev.groups.tile
        squares = np.where(np.isfinite(ev.squares), ev.squares, 0.0)
        count = np.bincount(tile)
        mean = np.bincount(tile, weights=squares) / np.maximum(count, 1)
        wrong = np.flatnonzero(mean > WRONG_SQUARES)
        inside = np.zeros(0, dtype=np.int64)
        if 0 < wrong.size <= FEW_TILES * np.count_nonzero(count):
            inside = np.flatnonzero(np.isin(tile, wrong))[:SAMPLE_INSIDE]
        ev._cache["wrong tiles"] = inside
    found: npt.NDArray[np.int64] = ev._cache["wrong tiles"]
    return found


def _tiles_wrong(ev: Evidence, index: npt.NDArray[np.int64], predicted: npt.NDArray[Any]) -> bool:
    """Whether ``predicted`` is wrong in some tile of ``index`` as the precision check sees
    it (the mean square of its errors beyond the margin)."""
    with np.errstate(all="ignore"):
        change = np.abs(difference(predicted, ev.expected[index]))
        ratio = ratios(change, ev.yardstick[index])
    tile = ev.groups.tile[index]
    mean = np.bincount(tile, weights=ratio * ratio) / np.maximum(np.bincount(tile), 1)
    return bool(np.any(mean > WRONG_SQUARES))


#: The share of elements a kernel must give exactly as a last-rounding mistake predicts.
EXACT_SHARE = 0.9


def _gives(
    ev: Evidence, terms: Terms, variant: Variant, sample: npt.NDArray[np.int64] | None
) -> bool:
    """Whether the kernel's values are ``variant``'s predicted ones themselves, at
    :data:`EXACT_SHARE` of the sampled elements at least and more often than the right
    ones (a mistake within a unit in the last place, told from a small wrong scale)."""
    index = _subsample(ev, terms) if sample is None else sample
    predicted, _ = terms.evaluate(ev.name, ev.groups.flat[index], variant)
    kernel = ev.kernel[index]
    same = float(np.mean(kernel == predicted.astype(kernel.dtype)))
    right = float(np.mean(kernel == ev.expected[index]))
    return same >= EXACT_SHARE and same > right


def _subsample(ev: Evidence, terms: Terms) -> npt.NDArray[np.int64]:
    """As many sampled positions as about half a million terms take (at least 32): half
    of them the worst, half spread at random, so that a mistake must match both."""
    count = max(32, TERMS // max(1, terms.term_count(ev.name)))
    if count >= ev.sample.size:
        return ev.sample
    worst = min(WORST, ev.sample.size // 2, count // 2)
    spread = ev.sample[min(WORST, ev.sample.size // 2) :]
    return np.concatenate([ev.sample[:worst], spread[: count - worst]])


# -- the causes, in order ----------------------------------------------------------------------


def _structural(
    ev: Evidence, terms: Terms, case: Fixture, sample: npt.NDArray[np.int64] | None = None
) -> str | None:
    """The classic mistake the array (or its ``sample``) matches; of several, the one it
    matches most closely (the bias left out and the bias scaled twice differ by less than a
    rounding where the scale is small)."""
    geometry = terms.geometry
    matched: list[tuple[float, str]] = []
    for mistake in [*MISTAKES, *_group_swaps(ev, geometry)]:
        if ev.name not in mistake.arrays:
            continue
        variant = mistake.variant(geometry, case)
        if variant is None:
            continue
        squares = _makes(ev, terms, variant, edge=mistake.edge, sample=sample)
        if squares is not None and mistake.exact and not _gives(ev, terms, variant, sample):
            squares = None
        if squares is not None:
            matched.append((squares, mistake.description))
    if matched:
        return min(matched, key=lambda pair: pair[0])[1]
    if sample is not None:
        return None
    if ev.rule.output_format == "float64" and ev.bits() <= 24 + 2 * MARGIN_BITS:
        narrow = replace(ev.rule, accumulate="float32")
        if _makes(ev, terms, Variant(operands=rounding("float32")), narrow) is not None:
            return (
                "computes in float32: the results pass as those of a float32 kernel "
                "(inputs or sums in float32)"
            )
    return None


def _group_swaps(ev: Evidence, geometry: Any) -> list[Mistake]:
    """Two groups' weight blocks swapped, when the wrong rows are those of two groups."""
    groups = geometry.groups
    if not 1 < groups <= 64 or ev.name == "grad_bias":
        return []
    row_axis = ev.axes.index(ev.groups.layout.row) if ev.groups.layout.row else None
    if row_axis is None:
        return []
    per_index = ev.by_index(row_axis)
    per_group = ev.groups.layout.shape[row_axis] // groups
    wrong_rows = np.flatnonzero(per_index > WRONG_SQUARES)
    wrong = sorted({int(r) // per_group for r in wrong_rows})
    if len(wrong) != 2:
        return []
    return [swapped_groups(geometry, wrong[0], wrong[1])]


def _scaled_fits(ev: Evidence, factor: float, where: npt.NDArray[np.bool_] | None) -> bool:
    """Whether the kernel is ``factor`` times the right result (where ``where`` holds), up to
    a correct kernel's rounding."""
    kernel, expected = ev.kernel, ev.expected
    scale, rounded, norms = ev.error_scale, ev.rounded, ev.normwise
    if where is not None:
        kernel, expected = kernel[where], expected[where]
        scale, rounded = scale[where], rounded[where]
        norms = None if norms is None else norms[where]
    norms = None if norms is None else abs(factor) * norms
    with np.errstate(all="ignore"):
        error = np.abs(difference(kernel, factor * expected))
        bound = 2 * ev.rule.bound(
            ev.terms, abs(factor) * scale, abs(factor) * rounded, factor * ev.scale, norms
        )
        if not np.all((error <= bound) | (error == 0)):
            return False
        yardstick = ev.rule.yardstick(
            ev.terms, abs(factor) * scale, abs(factor) * rounded, factor * ev.scale, norms
        )
        ratio = ratios(error, yardstick)
    return bool(ratio.size and np.mean(ratio * ratio) <= WRONG_SQUARES)


def _factor_text(beta: float, spread: float) -> str:
    if abs(beta) < 0.1:
        sign = "+" if beta > 0 else "-"
        return f"a scale off by a factor 1 {sign} {abs(beta):.1e} ± {spread:.1g}"
    return f"off by a factor {1 + beta:.4g} ± {spread:.1g} (a wrong scale)"


@dataclass(frozen=True)
class _Factor:
    """A whole array off by a factor: the words for it, and what a wrong scale rule would
    have to give (``named``, when one does)."""

    beta: float
    spread: float
    named: str | None

    @property
    def text(self) -> str:
        if self.named:
            return self.named
        return f"{_factor_text(self.beta, self.spread)} (the rest of the result is right)"

    def same(self, other: _Factor) -> bool:
        slack = SIGNIFICANT * (self.spread + other.spread)
        return abs(self.beta - other.beta) <= slack + 1e-12 * abs(self.beta)


def _scale(ev: Evidence, candidates: Sequence[ScaleMistake]) -> _Factor | None:
    fitted = fit(ev, None)
    if fitted is None:
        return None
    beta, spread = fitted
    if ev.off(beta, spread) <= SIGNIFICANT:
        return None
    if ev.rule.rounding == "stochastic" and abs(beta) <= 2 * ev.rule.u_out:
        # Less than a unit in the last place, one way: a rounding that leans, whose
        # errors (up to a unit each) need not look like those of a scaled result.
        return _Factor(beta, spread, _leaning(beta, spread, ev.rule.u_out))
    if not _scaled_fits(ev, 1 + beta, None):
        return None
    if not uniform(ev, beta):
        return None  # some parts are off by more than others: not one scale
    slack = SIGNIFICANT * spread + 2 * ev.rule.u_out
    for candidate in candidates:
        factor = candidate.factor
        if candidate.array == ev.name and abs(1 + beta - factor) <= slack * factor:
            return _Factor(beta, spread, f"{candidate.description} (a factor {factor:.6g})")
    return _Factor(beta, spread, None)


def _leaning(beta: float, spread: float, u_out: float) -> str:
    """A declared stochastic rounding whose errors lean one way, in words."""
    sign = "+" if beta > 0 else "-"
    return (
        f"stochastic rounding with a bias: the errors lean by a factor 1 {sign} {abs(beta):.1e} "
        f"± {spread:.1g} of the values, {beta / (2 * u_out):+.2f} of a unit in the last place "
        "where unbiased rounding leans by 0 (noise of the wrong width, random bits reused, "
        "or truncation where rounding belongs)"
    )


def _where(ev: Evidence, part: Part) -> str:
    """A part in words: ``grad_weight at k = 4``, ``output at o in 64..127, l in 0..63``."""
    texts = []
    layout = ev.groups.layout
    for axis, wrong in enumerate(part.indices):
        if wrong is not None:
            texts.append(describe_indices(wrong, layout.shape[axis], layout.axes[axis]))
    return f"{ev.name} at {', '.join(texts)}"


def _near_borders(ev: Evidence, part: Part, geometry: Any) -> bool:
    """Whether the wrong part is positions within a kernel's reach of either end."""
    layout = ev.groups.layout
    if ev.name not in ("output", "grad_input") or layout.axes[-1] != "l":
        return False
    if any(w is not None for w in part.indices[:-1]) or part.indices[-1] is None:
        return False
    length = layout.shape[-1]
    reach = (geometry.kernel_size - 1) * geometry.dilation // max(1, geometry.stride) + 1
    wrong = part.indices[-1]
    return bool(np.all((wrong < reach) | (wrong >= length - reach)))


def _located(ev: Evidence, terms: Terms, case: Fixture) -> str | None:
    part = wrong_part(ev)
    if part is None:
        return None
    inside = part.mask(ev)
    where = _where(ev, part)
    if _near_borders(ev, part, terms.geometry):
        where += " (near the borders: the padding)"
    # A mistake or a factor is named for a part only on enough of its elements: one or two
    # fit many a small change (a bias scaled twice moves one element by a hair) and any
    # factor at all.
    enough = np.count_nonzero(inside) >= LEAST_INSIDE
    mistake = _structural(ev, terms, case, _inside_sample(ev, inside)) if enough else None
    if mistake is not None:
        return f"{where}: {mistake}; the rest is right"
    fitted, rest = (fit(ev, inside), fit(ev, ~inside)) if enough else (None, None)
    if fitted is not None and rest is not None:
        beta, spread = fitted
        apart = abs(beta - rest[0]) > SIGNIFICANT * math.hypot(spread, rest[1])
        if apart and _scaled_fits(ev, 1 + beta, inside):
            return f"{where}: {_factor_text(beta, spread)}; the rest is right"
    width = arithmetic.rate_bits(ev, terms, ~inside) if _unbiased(ev, ~inside) else None
    if width is not None:  # the rest errs as a narrow sum does: the whole array's arithmetic
        ev._cache["rate_bits"] = width
        return None
    return f"{where} wrong ({_bits(ev.bits(inside))} there); the rest is right"


def _inside_sample(ev: Evidence, inside: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Sampled positions inside a part: the sample's own, topped up at random."""
    chosen = ev.sample[inside[ev.sample]]
    if chosen.size < SAMPLE_INSIDE:
        candidates = np.flatnonzero(inside)
        rng = np.random.default_rng(1)
        extra = rng.choice(candidates, min(candidates.size, SAMPLE_INSIDE), replace=False)
        chosen = np.concatenate([chosen, extra[~np.isin(extra, chosen)]])
    return chosen[:SAMPLE_INSIDE]


def _bits(bits: float) -> str:
    return "exact" if math.isinf(bits) and bits > 0 else f"{bits:.1f} bits"


def _width_words(bits: int) -> str:
    name = _WIDTHS.get(bits)
    return f"a running sum rounded to {name}" if name else f"a {bits}-bit accumulator"


def _arithmetic(ev: Evidence, terms: Terms) -> str | None:
    """Sums kept in fewer bits than the rule allows: the width read from the grid the sums
    lie on, or from the size of the errors."""
    rule = ev.rule
    if rule.bits < 24:
        return _narrow_output(ev, terms)
    acc_bits = round(-math.log2(rule.u_acc))
    words = "summed in" if ev.name == "grad_bias" else "sums keep"
    grid = arithmetic.grid_bits(ev, terms)
    if grid is not None and grid < acc_bits and _passes_with(ev, grid):
        return f"{words} {grid} significant bits: {_width_words(grid)}{_declare(grid)}"
    estimate = arithmetic.error_bits(ev, terms)
    if estimate is None or not 4 <= estimate <= acc_bits - 1.5:
        return None
    width = max(2, round(estimate))
    if not (_passes_with(ev, width) or _passes_with(ev, width - 1)):
        return None
    return (
        f"{words} about {estimate:.0f} significant bits (± 1, from the size of the "
        f"errors){_declare(width)}"
    )


def _passes_with(ev: Evidence, bits: int) -> bool:
    """Whether the sample passes as the results of sums kept in ``bits`` bits."""
    narrow = replace(ev.rule, accumulate=_WIDTHS.get(bits, f"{bits} bits"))
    return fits(ev, ev.sample, ev.expected[ev.sample], ev.error_scale[ev.sample], narrow)


def _declare(bits: int) -> str:
    name = _WIDTHS.get(bits)
    if name in ("bfloat16", "float16", "float32"):
        return f" (say so with accumulate={name!r}, or sum in a wider format)"
    return (
        f" (sum in float32, or promote partial sums to float32 often enough; a kernel that "
        f"does so by design declares it: accumulate='{bits} bits every m', m products "
        "between promotions)"
    )


def _narrow_output(ev: Evidence, terms: Terms) -> str | None:
    """A narrow case whose sums keep fewer bits than the rule allows: a register a few bits
    wider than the format (read from how often results land beside the exact ones rounded),
    or a running sum in the format itself."""
    rule = ev.rule
    if rule.output_format not in ("float16", "bfloat16") or rule.accumulate == rule.output_format:
        return None
    fmt = rule.output_format
    # A running sum's errors take either sign: errors whose mean is a scale's are not one.
    if not _unbiased(ev, None):
        return None
    rate = _rate_bits(ev, terms)
    if rate is not None and rule.bits + 3 <= rate <= -math.log2(rule.u_acc) - 1.5:
        return (
            f"sums keep about {rate:.0f} significant bits (± 1, from how often results "
            f"differ from the exact ones rounded; more than {fmt}'s {rule.bits}, fewer than "
            f"{rule.accumulate}'s){_declare(max(2, round(rate)))}"
        )
    narrow = replace(rule, accumulate=fmt)
    if not fits(ev, ev.sample, ev.expected[ev.sample], ev.error_scale[ev.sample], narrow):
        return None
    # Errors clearly larger than a correct kernel's.
    if ev.bits() > rule.bits - 1:
        return None
    estimate = rate if rate is not None else arithmetic.error_bits(ev, terms)
    about = "" if estimate is None else f", about {estimate:.0f} significant bits kept"
    if estimate is not None and estimate >= rule.bits + 3:  # far wider than the format: a register
        width = max(2, round(estimate))
        return (
            f"sums keep about {estimate:.0f} significant bits (± 1, from the size of the "
            f"errors; more than {fmt}'s {rule.bits}, fewer than {rule.accumulate}'s)"
            f"{_declare(width)}"
        )
    if ev.name == "grad_bias":
        return f"summed in {fmt}{about} (say so with accumulate={fmt!r}, or sum in float32)"
    return (
        f"accumulates in {fmt}: the results pass as those of a running sum rounded to "
        f"{fmt}{about} (say so with accumulate={fmt!r}, or sum in float32)"
    )


def _unbiased(ev: Evidence, where: npt.NDArray[np.bool_] | None) -> bool:
    """Whether the errors (of the elements ``where`` holds) show no scale error's mean."""
    fitted = fit(ev, where)
    return fitted is None or ev.off(*fitted) <= SIGNIFICANT


def _rate_bits(ev: Evidence, terms: Terms) -> float | None:
    """:func:`arithmetic.rate_bits` over the whole array, measured once."""
    if "rate_bits" not in ev._cache:
        ev._cache["rate_bits"] = arithmetic.rate_bits(ev, terms)
    found: float | None = ev._cache["rate_bits"]
    return found


def _unexplained(ev: Evidence) -> str:
    """What the evidence shows, when no cause explains it (a wrong part with the rest
    right is named before, as such)."""
    text = f"{ev.name}: {_bits(ev.bits())}"
    fitted = fit(ev, None)
    if fitted is not None and ev.off(*fitted) > SIGNIFICANT:
        text += (
            f", errors' mean like a factor 1 {'+' if fitted[0] > 0 else '-'} "
            f"{abs(fitted[0]):.1e} ± {fitted[1]:.1g} that does not explain them"
        )
    return text


def explain(
    verdict: CaseVerdict,
    fixture: Fixture,
    results: dict[str, Any],
    precision: str = "exact",
    accumulate: str | None = None,
    whole_reference: bool = False,
) -> CaseVerdict:
    """A failing verdict completed: the likely cause in
    :attr:`~uscale_ref.verdict.CaseVerdict.cause`, and the precision a correct evaluation
    reaches beside each failing array's. That evaluation sums each sampled element's terms
    in the accumulation format and rounds once; ``whole_reference`` evaluates the whole case
    with uscale_ref instead (its error histogram is drawn in the pictures; not for a compact
    fixture, whose inputs are not drawn whole). A passing verdict is returned as it is."""
    if verdict.passed:
        return verdict
    failing = [report.name for report in verdict.failing]
    verdict.cause, sampled = _diagnosis(
        fixture, results, failing, precision, accumulate, verdict.failing,
        verdict.rule.algorithm, verdict.rule.rounding,
    )  # fmt: skip
    references = {}
    if whole_reference and not fixture.compact:
        from ..reference import correct_results

        references = correct_results(fixture, failing)
    # The reports of failing arrays no longer keep their element-wise figures.
    arrays = []
    for r in verdict.arrays:
        if r.name in references:
            r = with_reference(fixture, r, references[r.name], r.measured)
        elif r.name in sampled:
            r = replace(r, reference_bits=sampled[r.name], measured=None)
        else:
            r = replace(r, measured=None)
        arrays.append(r)
    verdict.arrays = arrays
    return verdict


def diagnose(
    case: Fixture,
    results: dict[str, Any],
    failing: Sequence[str],
    precision: str = "exact",
    accumulate: str | None = None,
    reports: Sequence[ArrayReport] | None = None,
    algorithm: str = "direct",
    rounding: str = "nearest",
) -> str:
    """The likely cause of the ``failing`` arrays of ``results``; or :data:`NO_CAUSE`
    followed by what the evidence shows.

    Each failing array is explained on its own, by the first cause in the
    module's order that fits it; arrays with the same cause are named
    together. ``reports`` (the failing arrays' reports) is accepted for
    callers that have them; where they kept their element-wise figures
    (``judge(..., keep=True)``) the diagnosis starts from those, else it measures
    them again from the results.
    """
    return _diagnosis(case, results, failing, precision, accumulate, reports, algorithm, rounding)[
        0
    ]


def _diagnosis(
    case: Fixture,
    results: dict[str, Any],
    failing: Sequence[str],
    precision: str,
    accumulate: str | None,
    reports: Sequence[ArrayReport] | None,
    algorithm: str = "direct",
    rounding: str = "nearest",
) -> tuple[str, dict[str, float]]:
    """The cause, and the precision a correct evaluation reaches on each array's sample."""
    rule = rule_for(case.dtype, precision, accumulate, algorithm=algorithm, rounding=rounding)
    names = [n for n in failing if n in results and n in case.expected]
    kept = {r.name: r.measured for r in reports or () if r.measured is not None}
    # Arrays that fail only by a declared accumulator's rate of results off the exact ones
    # rounded: that figure is the cause (see uscale_ref.verdict.accumulator).
    accumulated = {
        r.name: r.accumulator.cause()
        for r in reports or ()
        if r.accumulator is not None
        and not r.accumulator.passed
        and r.bound_passed
        and r.precision.passed
        and r.bias.passed
    }
    findings: dict[str, tuple[str, str]] = {}
    factors: dict[str, _Factor] = {}
    reference: dict[str, float] = {}
    with np.errstate(all="ignore"):
        terms = _terms(case)
        candidates = scale_candidates(terms.geometry, case)
        for name in names:
            if name in accumulated:
                findings[name] = (accumulated[name], "array")
                continue
            ev = evidence(case, name, results[name], rule, kept.get(name))
            reference[name] = _correct_bits(ev, terms, case)
            found = _explain(ev, terms, case, candidates)
            if isinstance(found, _Factor):
                factors[name] = found
                found = (found.text, "array")
            findings[name] = found
    # Arrays off by one common factor: a factor, whatever rule one array's alone suggests.
    for name, factor in factors.items():
        alike = [other for other in factors.values() if factor.same(other)]
        if len(alike) > 1:
            spread = max(other.spread for other in alike)
            leaning = rule.rounding == "stochastic" and abs(alike[0].beta) <= 2 * rule.u_out
            named = _leaning(alike[0].beta, spread, rule.u_out) if leaning else None
            findings[name] = (_Factor(alike[0].beta, spread, named).text, "array")
    return combined(names, findings), reference


def _correct_bits(ev: Evidence, terms: Terms, case: Fixture) -> float:
    """The precision of a correct evaluation at the sample's spread positions: each
    element's products summed in the accumulation format (pairwise, as NumPy sums), the
    bias added and the scale multiplied there, rounded once to the case's format."""
    from ...formats import round_to

    spread = min(WORST, ev.sample.size // 2)  # the random part, not the kernel's worst
    # A quarter of the mistakes' terms: a figure for the report, not a test.
    index = ev.sample[spread:][: max(16, TERMS // 4 // max(1, terms.term_count(ev.name)))]
    products = terms.products(ev.name, ev.groups.flat[index])
    real = {"float64": np.float64}.get(ev.rule.accumulate, np.float32)
    dtype = np.dtype(real if not np.iscomplexobj(products.a) else
                     np.complex128 if real is np.float64 else np.complex64)  # fmt: skip
    t = (products.a * products.b).astype(dtype)
    value = (t.sum(axis=1) + products.bias.astype(dtype)) * dtype.type(products.scale)
    stored = np.dtype(case.storage_dtype)
    value = value.astype(stored)
    if case.dtype == "bfloat16":
        value = round_to(value, "bfloat16")
    elif case.dtype == "complex32":
        value = value.real.astype(np.float16) + 1j * value.imag.astype(np.float16)
    error = np.abs(difference(value, ev.expected[index]))
    ratio = ratios(error, ev.yardstick[index])
    mean = float(np.mean(ratio * ratio)) if ratio.size else 0.0
    return math.inf if mean == 0 else ev.rule.bits - 0.5 * math.log2(mean)


def _explain(
    ev: Evidence, terms: Terms, case: Fixture, candidates: Sequence[ScaleMistake]
) -> tuple[str, str] | _Factor:
    """One array's cause and its kind: ``"cause"`` (words that stand alone), ``"array"``
    (words about the array, to be prefixed with its name) or ``"unexplained"``; or the
    factor the whole array is off by."""
    if ev.rule.rounding == "stochastic":  # a declared stochastic rounding that leans
        leaning = _scale(ev, ())
        if leaning is not None and leaning.named is not None:
            return leaning
    structural = _structural(ev, terms, case)
    if structural is not None:
        return structural, "cause"
    located = _located(ev, terms, case)
    if located is not None:
        return located, "cause"
    scale = _scale(ev, candidates)
    if scale is not None:
        return scale
    # In bfloat16 or float16 a running sum in the format errs by the partial sums' size,
    # whatever the element's own: as a transform's errors do. It is the likelier there.
    narrow_first = ev.rule.output_format in ("bfloat16", "float16")
    narrow = _arithmetic(ev, terms) if narrow_first else None
    if narrow is not None:
        return narrow, "array"
    transform = _transform(ev, case)
    if transform is not None:
        return transform, "array"
    narrow = None if narrow_first else _arithmetic(ev, terms)
    if narrow is not None:
        return narrow, "array"
    return _unexplained(ev), "unexplained"


def _transform(ev: Evidence, case: Fixture) -> str | None:
    """Errors beyond the direct bound but within a fast algorithm's: Winograd's on tiles
    (the errors' size repeating with the tile) or an FFT's on whole rows (as large wherever
    the element is small)."""
    from ..algorithm import FFT_UNITS, WINOGRAD_UNITS, normwise

    if ev.name == "grad_bias" or ev.rule.algorithm != "direct":
        return None
    error = np.sqrt(ev.squares) * ev.yardstick
    if not np.any(error > ev.bound):
        return None  # it fails for another reason than the size of its errors
    units = ev.rule.complex_factor * ev.rule.u_acc
    tile = _tile(ev)
    if tile is not None:
        tiles = normwise(case, ev.name, "winograd")
        if np.all(error <= ev.bound + units * WINOGRAD_UNITS * tiles):
            return (
                f"errors bounded by the norms of each tile's inputs, their size repeating "
                f"every {tile} positions: a fast algorithm on tiles of {tile} outputs "
                "(Winograd's minimal filtering) rather than direct sums (declare it with "
                "algorithm='winograd')"
            )
    if ev.rule.output_format in ("bfloat16", "float16"):
        return None  # a narrow register's long sums err by the partial sums alike: not told
    fitted = fit(ev)
    if fitted is not None and ev.off(*fitted) > SIGNIFICANT:
        return None  # an FFT's errors take either sign
    index = ev.sample[min(WORST, ev.sample.size // 2) :]
    usable = (error[index] > 0) & (ev.error_scale[index] > 0)
    if np.count_nonzero(usable) < 16:
        return None
    # A direct sum errs in proportion to its terms' size; an FFT's error is spread over the
    # row, whatever the element's own size.
    slope = np.polyfit(np.log(ev.error_scale[index][usable]), np.log(error[index][usable]), 1)[0]
    if slope > 0.5:
        return None
    if not np.all(error <= ev.bound + units * FFT_UNITS * normwise(case, ev.name, "fft")):
        return None
    return (
        "errors bounded by the rows' norms, not element by element: a fast algorithm "
        "(an FFT convolution) rather than direct sums (declare it with algorithm='fft')"
    )


#: Tiles a Winograd kernel's errors are looked for in, and how many elements each
#: position in the tile needs; the errors' root mean square must differ by this factor
#: between two positions in the tile.
TILES = range(2, 9)
TILE_ELEMENTS = 256
TILE_CONTRAST = 1.5


def _tile(ev: Evidence) -> int | None:
    """The period (2 to 8 positions along ``l``) with which the size of the errors repeats,
    as a Winograd kernel's do (an output's error depends on its place in the tile: the
    transforms weigh the tile's last outputs by the largest powers of the points)."""
    layout = ev.groups.layout
    if ev.name not in ("output", "grad_input") or layout.axes[-1] != "l":
        return None
    position = ev.groups.coords[-1]
    with np.errstate(all="ignore"):
        relative = np.abs(difference(ev.kernel, ev.expected)) / ev.yardstick
    usable = np.isfinite(relative)
    position, relative = position[usable], relative[usable]
    contrast: dict[int, float] = {}
    for tile in TILES:
        place = position % tile
        counts = np.bincount(place, minlength=tile)
        if counts.min() < TILE_ELEMENTS:
            continue
        squares = np.bincount(place, weights=relative * relative, minlength=tile) / counts
        if squares.min() > 0:
            contrast[tile] = math.sqrt(squares.max() / squares.min())
    if not contrast or max(contrast.values()) < TILE_CONTRAST:
        return None
    strongest = max(contrast.values())
    return min(tile for tile, value in contrast.items() if value >= 0.8 * strongest)


def combined(names: Sequence[str], findings: dict[str, tuple[str, str]]) -> str:
    """The arrays' causes in one line: arrays with the same words named together."""
    by_text: dict[tuple[str, str], list[str]] = {}
    for name in names:
        by_text.setdefault(findings[name], []).append(name)
    explained, unexplained = [], []
    for (text, kind), arrays in by_text.items():
        if kind == "cause":
            explained.append(text)
        elif kind == "array":
            explained.append(f"{', '.join(arrays)}: {text}")
        else:
            unexplained.append(text)
    if not unexplained:
        return "; ".join(explained)
    evidence_text = f"{NO_CAUSE} (" + "; ".join(unexplained) + ")"
    return "; ".join([*explained, evidence_text])
