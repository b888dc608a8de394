"""A picture of a case's verdict: where the precision falls short, and how the errors spread.

For each judged array, two panels side by side:

* a map of the precision achieved per row (channel) and block of 64
  positions, so that a wrong tile, channel range or tile edge is seen at a
  glance (tiles short of the required precision are hatched);
* the histogram of ``log2(|error| / yardstick)`` for the kernel, beside the
  same for a correct evaluation (uscale_ref in the case's dtype) when the
  verdict carries one; a dashed line marks the ratio at which a group of
  errors fails.

Needs matplotlib (``pip install uscale-ref[plot]``); drawn without a screen.
"""

from __future__ import annotations

import math
import re
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..tolerance.rule import BLOCK, MARGIN_BITS
from .precision import HISTOGRAM_EDGES

if TYPE_CHECKING:
    from ..tolerance.rule import Rule
    from .report import ArrayReport


class Drawn(Protocol):
    """What a picture shows of a verdict (:class:`~uscale_ref.verdict.CaseVerdict` has it)."""

    case_id: str
    rule: Rule
    arrays: list[ArrayReport]
    cause: str | None

    @property
    def passed(self) -> bool: ...


__all__ = ["draw", "picture_name", "prepare_folder", "require_matplotlib"]

#: Case ids longer than this are cut in picture file names (and told apart by a hash).
_NAME_LENGTH = 120


def picture_name(case_id: str) -> str:
    """The file name of a case's picture: the id itself when it is made of letters, digits,
    ``_``, ``-`` and ``.`` only; else those characters, the rest as ``-``, and a hash of the
    id (so two ids never share a picture). Never a path: it stays in the folder given.

    >>> picture_name("f32_k3"), picture_name("../up")
    ('f32_k3.png', 'up-8c722b8a.png')
    """
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", case_id).lstrip(".-")[:_NAME_LENGTH] or "case"
    if safe != case_id:
        safe = safe.rstrip(".") + "-" + hashlib.sha256(case_id.encode()).hexdigest()[:8]
    return f"{safe}.png"


def prepare_folder(folder: str | Path, option: str) -> Path:
    """The folder pictures go into, created if needed and proven writable; a ``ValueError``
    naming ``option`` otherwise (before any case is judged)."""
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path}: not a folder; name a folder for the pictures")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".uscale-ref-", suffix=".probe")
        probe.close()
    except OSError as error:
        raise ValueError(
            f"{option} {path}: cannot write pictures there ({error.strerror or error})"
        ) from None
    return path


_ROW_LABEL = {
    "output": "output channel o",
    "grad_input": "input channel c",
    "grad_weight": "output channel o",
    "grad_bias": "",
}


def require_matplotlib(option: str) -> None:
    """A ``ValueError`` naming ``option`` and the extra to install, unless matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError(
            f"{option}: drawing needs matplotlib (pip install 'uscale-ref[plot]')"
        ) from None


def draw(verdict: Drawn, path: Path, names: list[str] | None = None) -> Path:
    """Draw ``verdict`` (its arrays ``names``, default all) to ``path`` (PNG); return the path."""
    require_matplotlib("plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt

    arrays = [r for r in verdict.arrays if names is None or r.name in names]
    if not arrays:
        raise ValueError(f"arrays: none of {names} was judged in {verdict.case_id}")
    figure, axes = plt.subplots(
        len(arrays), 2, figsize=(13, 3.3 * max(1, len(arrays))), squeeze=False,
        gridspec_kw={"width_ratios": [1.4, 1]},
    )  # fmt: skip
    state = "passes" if verdict.passed else "FAILS"
    title = f"{verdict.case_id}: {state} ({verdict.rule.describe()})"
    if verdict.cause:
        title += f"\nlikely cause: {verdict.cause}"
    # Wrapped to the figure's width; drawn as plain text, whatever a case id holds.
    wrapped = "\n".join(textwrap.fill(line, 150) for line in title.splitlines())
    figure.suptitle(wrapped, fontsize=11, y=0.998, parse_math=False)
    for (left, right), report in zip(axes, arrays, strict=True):
        _precision_map(left, report, figure)
        _histogram(right, report)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.03 * wrapped.count("\n") / len(arrays)))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _precision_map(axis: Any, report: ArrayReport, figure: Any) -> None:
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    p = report.precision
    tiles = p.tile_bits  # NaN: a tile without judged elements (a compact fixture's)
    top = p.format_bits + 4
    bottom = p.required - 10
    shown = np.clip(np.where(np.isinf(tiles) & (tiles > 0), top, tiles), bottom, top)
    colours = colormaps["RdYlGn"].with_extremes(bad="#dddddd")
    image = axis.imshow(
        np.ma.masked_invalid(shown), aspect="auto", interpolation="nearest", cmap=colours,
        vmin=bottom, vmax=top, origin="lower",
    )  # fmt: skip
    _hatch_short_tiles(axis, tiles < p.required)
    bar = figure.colorbar(image, ax=axis, pad=0.01)
    bar.set_label("significant bits")
    bar.ax.axhline(p.required, color="black", linewidth=1.5)
    layout = report.layout
    axis.set_xlabel(f"block of {BLOCK} positions ({layout.position})")
    axis.set_ylabel(_ROW_LABEL.get(report.name, "") or "")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if layout.row is None:  # one row (grad_bias): no row axis to label
        axis.set_yticks([])
    else:
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    title = (
        f"{report.name}: {p.short()} (at least {p.required:g}; {report.rule.output_format} "
        f"has {p.format_bits})"
    )
    if p.failing_tiles:
        title += f", {p.failing_tiles} of {p.judged_tiles} tiles short"
    if not report.whole:
        title += " (grey: not kept)"
    axis.set_title(title, fontsize=10)


def _hatch_short_tiles(axis: Any, short: Any) -> None:
    """Hatch each run of short tiles along a row (one rectangle per run, however many)."""
    from matplotlib.patches import Rectangle

    for row in range(short.shape[0]):
        blocks = np.flatnonzero(short[row])
        if not blocks.size:
            continue
        starts = blocks[np.r_[True, np.diff(blocks) > 1]]
        ends = blocks[np.r_[np.diff(blocks) > 1, True]]
        for start, end in zip(starts, ends, strict=True):
            axis.add_patch(
                Rectangle(
                    (start - 0.5, row - 0.5),
                    end - start + 1,
                    1,
                    fill=False,
                    hatch="////",
                    edgecolor="black",
                    linewidth=0,
                )
            )


def _histogram(axis: Any, report: ArrayReport) -> None:
    centres = (HISTOGRAM_EDGES[:-1] + HISTOGRAM_EDGES[1:]) / 2
    counts = report.precision.counts
    bins = len(centres)
    kernel = counts[:bins]
    axis.step(centres, kernel, where="mid", color="tab:red", label="your kernel", linewidth=1.6)
    if report.reference_counts is not None:
        reference = report.reference_counts[:bins]
        axis.fill_between(
            centres, reference, step="mid", color="tab:blue", alpha=0.35,
            label="a correct evaluation (uscale_ref)",
        )  # fmt: skip
    axis.axvline(MARGIN_BITS, color="black", linestyle="--", linewidth=1.2,
                 label=f"fails beyond, as a root mean square ({MARGIN_BITS:g} bits)")  # fmt: skip
    used = np.flatnonzero(kernel + (0 if report.reference_counts is None else reference))
    if used.size:
        low = max(centres[used[0]] - 2, -40)
        high = min(max(centres[used[-1]] + 2, MARGIN_BITS + 2), 40)
        axis.set_xlim(low, high)
    exact, infinite = int(counts[bins]), int(counts[bins + 1])
    note = f"exact: {exact} of {report.size}"
    if infinite:
        note += f"; NaN or where 0 was required: {infinite}"
    axis.text(0.99, 0.97, note, transform=axis.transAxes, ha="right", va="top", fontsize=9)
    axis.set_xlabel("log2(|error| / a correct kernel's error size)")
    axis.set_ylabel("elements")
    bias = report.bias
    axis.set_title(
        f"bias {bias.estimate:+.2g} of the values ({_z(bias.z)} s.e. from allowed)",
        fontsize=10,
    )
    axis.legend(fontsize=8, loc="upper left")


def _z(z: float) -> str:
    return "inf" if math.isinf(z) else f"{z:.3g}"
