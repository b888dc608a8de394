"""How many bits a kernel's sums keep: read from the grid its sums lie on, or from the size
of its errors against a simulated running sum.

A running sum rounded after every addition to a format of ``p`` significant
bits leaves the sum itself on that format's grid: in a float32 or float64
result, ``y / s - bias`` then has ``p`` significant bits, whatever order the
terms came in (:func:`grid_bits`). Where the sum passes through a wider
register last (partial sums promoted to float32, say) no grid remains; the
size of the errors still tells the width, since a ``p``-bit running sum errs
in proportion to ``2 ** -p``: the kernel's error over a sample of positions,
against that of a running sum simulated there with a known width, gives it
(:func:`error_bits`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from ...formats import round_bits, round_to, spacing
from .evidence import Evidence
from .terms import Terms

__all__ = ["error_bits", "grid_bits", "rate_bits", "round_bits"]

Float = npt.NDArray[np.float64]
#: A grid is read when at least this share of the sample lies on it ...
ON_GRID = 0.9
#: ... and the grid one bit coarser holds at most this share.
OFF_GRID = 0.75
#: Running sums are simulated over at most this many steps (blocks of terms beyond).
STEPS = 1024


def _parts(a: npt.NDArray[np.generic]) -> list[Float]:
    if np.iscomplexobj(a):
        return [np.asarray(a.real, dtype=np.float64), np.asarray(a.imag, dtype=np.float64)]
    return [np.asarray(a, dtype=np.float64)]


def grid_bits(ev: Evidence, terms: Terms) -> int | None:
    """The width of the grid the kernel's unscaled sums lie on, when they lie on one
    narrower than the output format (None otherwise, or for a narrow output)."""
    top = ev.rule.bits - 6
    if top < 6:
        return None
    sample = ev.sample
    flat = ev.groups.flat[sample]
    if flat.size == 0:
        return None
    bias = _bias_terms(ev, terms, flat)
    scale = terms.scales[ev.name]
    if scale == 0 or not math.isfinite(scale):
        return None
    # The scale multiplies the sum (y = s (sum + b)), or each term before it is added.
    found = [_grid(ev, ev.kernel[sample] / scale, bias, top),
             _grid(ev, ev.kernel[sample], np.multiply(scale, bias), top)]  # fmt: skip
    widths = [bits for bits in found if bits is not None]
    return min(widths) if widths else None


def _grid(ev: Evidence, values: npt.NDArray[np.generic], bias: npt.NDArray[np.generic],
          top: int) -> int | None:  # fmt: skip
    """The fewest significant bits of a grid ``values - bias`` lies on (None: none below
    ``top``)."""
    sums: list[Float] = []
    slack: list[Float] = []
    for kernel, offset in zip(_parts(values), _parts(bias), strict=True):
        held = kernel - offset
        usable = (held != 0) & np.isfinite(held) & (np.abs(offset) <= np.abs(held))
        sums.append(held[usable])
        slack.append(4 * ev.rule.u_out * (np.abs(held[usable]) + np.abs(offset[usable])))
    held, tolerance = np.concatenate(sums), np.concatenate(slack)
    if held.size < 8:
        return None
    share = [
        float(np.mean(np.abs(held - round_bits(held, bits)) <= tolerance))
        for bits in range(2, top + 1)
    ]
    for bits, on in enumerate(share, start=2):
        if on >= ON_GRID:
            coarser = share[bits - 3] if bits > 2 else 0.0
            return bits if coarser <= OFF_GRID else None
    return None


def _bias_terms(ev: Evidence, terms: Terms, flat: npt.NDArray[np.int64]) -> npt.NDArray[np.generic]:
    if ev.name != "output":
        return np.zeros(flat.size, dtype=terms.dtype)
    return terms.products("output", flat).bias


def error_bits(ev: Evidence, terms: Terms, bits: int = 12) -> float | None:
    """The significant bits a running sum would keep to err as the kernel does, measured
    on the sample against a simulated ``bits``-bit running sum (in the terms' order, each
    block of terms added exactly); None where the kernel's errors are too small to tell."""
    sample = ev.sample
    flat = ev.groups.flat[sample]
    products = terms.products(ev.name, flat)
    t = products.a * products.b
    count = t.shape[1]
    if count == 0:
        return None
    block = max(1, -(-count // STEPS))
    if block > 1:
        pad = (-count) % block
        t = np.pad(t, ((0, 0), (0, pad))).reshape(t.shape[0], -1, block).sum(axis=2)
    simulated = [np.zeros(t.shape[0]) for _ in _parts(t[:, 0])]
    for step in range(t.shape[1]):
        for total, part in zip(simulated, _parts(t[:, step]), strict=True):
            total += part
            total[:] = round_bits(total, bits)
    exact = _parts(t.sum(axis=1))
    simulated_error = sum(
        float(np.sum((s - e) ** 2)) for s, e in zip(simulated, exact, strict=True)
    )
    kernel = ev.kernel[sample] / products.scale - products.bias
    errors = [k - e for k, e in zip(_parts(kernel), exact, strict=True)]
    kernel_error = sum(float(np.sum(e * e)) for e in errors)
    if simulated_error == 0 or kernel_error == 0:
        return None
    # A running sum errs in proportion to its partial sums' size, not to the result's:
    # the errors, measured against the partial sums, must look like one distribution.
    partial = np.sqrt(sum(np.sum(np.abs(np.cumsum(p, axis=1)) ** 2, axis=1)
                          for p in _parts(t)))  # fmt: skip
    size = np.sqrt(sum(e * e for e in errors))
    result = np.sqrt(sum(e * e for e in exact)) + np.sqrt(sum(p * p for p in _parts(
        products.bias)))  # fmt: skip
    if _kurtosis(size, partial) > min(KURTOSIS, _kurtosis(size, result)):
        return None
    # ... and rounding errors take either sign, whatever the result's.
    signs = [np.sign(e[e != 0]) for e in errors]
    along = [np.sign(e * x)[e != 0] for e, x in zip(errors, exact, strict=True)]
    if not (_balanced(np.concatenate(signs)) and _balanced(np.concatenate(along))):
        return None
    return bits - 0.5 * math.log2(kernel_error / simulated_error)


#: The largest kurtosis of errors over their partial sums that still reads as a running sum's
#: (a normal distribution has 3, a uniform one 1.8).
KURTOSIS = 8.0


def _balanced(signs: Float) -> bool:
    """Whether +1 and -1 come about equally often (within four standard errors)."""
    if signs.size < 16:
        return False
    share = float(np.mean(signs > 0))
    return abs(share - 0.5) <= 2 / math.sqrt(signs.size)


def _kurtosis(errors: Float, sizes: Float) -> float:
    """``mean(v**4) / mean(v**2)**2`` of ``v = errors / sizes`` (inf when undefined)."""
    usable = sizes > 0
    v = errors[usable] / sizes[usable]
    second = float(np.mean(v * v)) if v.size else 0.0
    if second == 0:
        return math.inf
    return float(np.mean(v**4)) / second**2


#: The widest register a narrow result's width is read for (wider ones put results beside
#: the exact ones rounded too seldom to tell apart).
RATE_TOP = 22
#: The width is read from the share of results off the exact ones rounded while that share
#: is below this (beyond, the errors are large enough for their own size to tell it) ...
RATE_MOST = 0.85
#: ... and at least this many results are off (fewer tell no width).
RATE_LEAST = 32
#: The kernel's results off lie at most this many times as many steps of the format from the
#: exact ones rounded (on average) as the simulated register's do.
RATE_STEPS = 1.5
#: Products simulated: about this many (at least :data:`RATE_ELEMENTS` elements' worth),
#: more where fewer hold :data:`RATE_OFF` results off, up to :data:`RATE_MOST_TERMS`.
RATE_TERMS = 2**20
RATE_ELEMENTS = 128
RATE_OFF = 64
RATE_MOST_TERMS = 2**22


def rate_bits(
    ev: Evidence, terms: Terms, where: npt.NDArray[np.bool_] | None = None
) -> float | None:
    """The significant bits a running sum keeps to leave as many results off the exact
    ones rounded as the kernel does: for bfloat16 and float16 results, where a register
    a few bits wider than the format errs by less than the rounding and only how often a
    result lands beside the exact one rounded tells its width.

    Measured on judged elements (those ``where`` holds, if given) drawn at random, about
    :data:`RATE_TERMS` products in all (at least :data:`RATE_ELEMENTS` elements; more,
    up to :data:`RATE_MOST_TERMS` products, where the results off are rare). Running
    sums of every width from one bit more than the format's to :data:`RATE_TOP` bits are
    simulated there (in the terms' order, rounded to nearest after every addition, never
    promoted) and rounded to the output format. The kernel's count of results off the
    exact ones rounded lies between two widths' counts, and the width is read between
    them (on a log scale of the counts). Its results off must also lie as near the exact
    ones rounded as the register's do (:data:`RATE_STEPS`): results scattered farther
    are another error's. None where the results are not narrow real values rounded to
    nearest, the count is too small or too large to read, or the steps are too long.
    """
    rule = ev.rule
    if rule.output_format not in ("bfloat16", "float16") or rule.rounding != "nearest":
        return None
    if np.iscomplexobj(ev.expected) or ev.name == "grad_bias":
        return None
    candidates = np.flatnonzero(where) if where is not None else np.arange(ev.groups.size)
    kernel = np.asarray(ev.kernel[candidates], dtype=np.float64)
    target = np.asarray(ev.expected[candidates], dtype=np.float64)
    off = kernel != target
    share = float(np.mean(off)) if off.size else 0.0
    if share == 0:
        return None
    # Enough elements for about RATE_OFF results off, within the products allowed.
    count = max(1, terms.term_count(ev.name))
    wanted = max(RATE_ELEMENTS, RATE_TERMS // count, math.ceil(RATE_OFF / share))
    chosen = min(candidates.size, wanted, max(RATE_ELEMENTS, RATE_MOST_TERMS // count))
    pick = np.sort(np.random.default_rng(0).choice(candidates.size, chosen, replace=False))
    kernel, target, off = kernel[pick], target[pick], off[pick]
    seen = int(np.count_nonzero(off))
    if seen < RATE_LEAST or seen > RATE_MOST * chosen:
        return None
    widths = np.arange(rule.bits + 1, RATE_TOP + 1)
    register_off, steps = _register_off(terms, ev.name, ev.groups.flat[candidates[pick]],
                                        widths, target, rule.output_format)  # fmt: skip
    counts = np.count_nonzero(register_off, axis=1)
    worse = np.flatnonzero(counts >= seen)  # counts fall as the width grows
    if worse.size == 0 or worse[-1] == widths.size - 1:
        return None
    at = int(worse[-1])  # the kernel lies between this width and the next
    # A register a few bits wider than the format moves a result to a neighbour of the
    # exact one rounded, seldom farther: the kernel's results off must lie as near.
    kernel_steps = np.abs(kernel[off] - target[off]) / spacing(target[off], rule.output_format)
    if np.mean(kernel_steps) > RATE_STEPS * np.mean(steps[at][register_off[at]]):
        return None
    wide, narrow = counts[at], max(1, int(counts[at + 1]))
    if wide == narrow:
        return float(widths[at])
    return float(widths[at] + math.log(wide / seen) / math.log(wide / narrow))


def _register_off(
    terms: Terms,
    name: str,
    flat: npt.NDArray[np.int64],
    widths: npt.NDArray[np.int64],
    target: Float,
    fmt: str,
) -> tuple[npt.NDArray[np.bool_], Float]:
    """For each width, which results at ``flat`` a running sum of that many significant
    bits, rounded to ``fmt``, puts off ``target``, and by how many of ``fmt``'s steps."""
    from ..accumulator import BLOCK_TERMS

    per = max(1, BLOCK_TERMS // max(1, terms.term_count(name)))
    steps = np.zeros((widths.size, flat.size))
    # Veltkamp's splitting: (h * f) - (h * f - h), f = 2^(53 - p) + 1, is h rounded to
    # nearest with p significant bits (as round_bits gives it), in three operations.
    split = 2.0 ** (53 - widths[:, None]) + 1
    for start in range(0, flat.size, per):
        part = slice(start, start + per)
        products = terms.products(name, flat[part])
        columns = np.ascontiguousarray(np.real(products.a * products.b).T)
        held = np.zeros((widths.size, columns.shape[1]))
        for column in columns:
            held += column
            spread = held * split
            held = spread - (spread - held)
        rounded = round_to(products.scale * (held + products.bias.real), fmt)
        steps[:, part] = np.abs(rounded - target[part]) / spacing(target[part], fmt)
    return steps > 0, steps
