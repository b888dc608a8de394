"""A survey drawn: adapters down, dtype and direction across, each cell its verdict."""

from __future__ import annotations

import math
from pathlib import Path

from ..verdict.picture import require_matplotlib
from .table import Survey

#: Cell colours by verdict.
COLOURS = {"pass": "#b7e1b0", "fail": "#f2a7a0", "unsupported": "#e6e6e6",
           "not installed": "#ffffff", "no cases": "#ffffff"}  # fmt: skip


def draw(survey: Survey, path: str | Path) -> Path:
    """Draw ``survey`` to ``path`` (PNG): a grid of adapters by dtype and direction, each
    cell coloured by its verdict and labelled with the least precision in bits."""
    require_matplotlib("plot")
    path = Path(path)
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

    adapters = list(dict.fromkeys(row.adapter for row in survey.rows))
    columns = list(dict.fromkeys((row.dtype, row.direction) for row in survey.rows))
    cells = {(row.adapter, row.dtype, row.direction): row for row in survey.rows}
    figure, axes = plt.subplots(figsize=(1.0 + 0.95 * len(columns), 1.2 + 0.45 * len(adapters)))
    for i, name in enumerate(adapters):
        for j, (dtype, direction) in enumerate(columns):
            row = cells.get((name, dtype, direction))
            verdict = "no cases" if row is None else row.verdict
            axes.add_patch(Rectangle((j, i), 1, 1, facecolor=COLOURS[verdict],
                                         edgecolor="#999999"))  # fmt: skip
            if row is None:
                label = ""
            elif verdict in ("pass", "fail"):
                bits = row.bits
                label = "-" if bits is None else ("exact" if math.isinf(bits) else f"{bits:.1f}")
                if verdict == "fail":
                    label = f"{row.failed}/{row.cases}\n{label}"
            else:
                label = {"unsupported": "n/a", "not installed": "absent"}.get(verdict, "")
            axes.text(j + 0.5, i + 0.5, label, ha="center", va="center", fontsize=7)
    axes.set_xlim(0, len(columns))
    axes.set_ylim(len(adapters), 0)
    axes.set_xticks([j + 0.5 for j in range(len(columns))])
    axes.set_xticklabels([f"{d}\n{'fwd' if r == 'forward' else 'bwd'}" for d, r in columns],
                         fontsize=7)  # fmt: skip
    axes.set_yticks([i + 0.5 for i in range(len(adapters))])
    axes.set_yticklabels(adapters, fontsize=8)
    axes.tick_params(length=0)
    axes.set_title(f"conv1d judged by uscale_ref ({survey.plan} plan): green passes, "
                   "red fails (cases failed / run, least bits), grey unsupported",
                   fontsize=9)  # fmt: skip
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
