"""A survey's rows, its table in text and its JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

__all__ = ["Row", "Survey"]


@dataclass
class Row:
    """One adapter, dtype and direction over the plan's cases.

    ``verdict`` is ``pass``, ``fail``, ``unsupported`` or ``not installed``; ``bits`` the
    least precision over the cases' arrays (significant bits; None where nothing ran);
    ``causes`` each cause named with the number of failing cases it explains (causes
    that differ only in their figures counted together, under the first's text); ``cases``
    and ``failed`` how many cases ran and failed; ``note`` the framework's message where
    it refused every case; ``refused`` and ``refusal`` how many cases it refused and its
    first message, where it ran others.
    """

    adapter: str
    dtype: str
    direction: str
    verdict: str
    bits: float | None = None
    causes: dict[str, int] = field(default_factory=dict)
    cases: int = 0
    failed: int = 0
    note: str = ""
    failing_cases: list[str] = field(default_factory=list)
    refused: int = 0
    refusal: str = ""


@dataclass
class Survey:
    """A survey's rows and where it ran (processor, Python, NumPy, each framework's version)."""

    rows: list[Row]
    machine: dict[str, str]
    plan: str
    seconds: float = 0.0

    def table(self) -> str:
        """The rows as a text table, the machine first."""
        lines = [f"{key}: {value}" for key, value in self.machine.items()]
        lines.append(f"plan: {self.plan}; {self.seconds:.0f} s")
        lines.append("")
        header = ("framework", "dtype", "direction", "verdict", "bits", "cause")
        body = [
            (row.adapter, row.dtype, row.direction, verdict_text(row), _bits_text(row.bits),
             _cause_text(row))
            for row in self.rows
        ]  # fmt: skip
        widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
                  for i, h in enumerate(header[:-1])]  # fmt: skip
        for cells in [header, *body]:
            lead = "  ".join(c.ljust(w) for c, w in zip(cells[:-1], widths, strict=True))
            lines.append(f"{lead}  {cells[-1]}".rstrip())
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"machine": self.machine, "plan": self.plan,
                           "seconds": round(self.seconds, 1),
                           "rows": [asdict(row) for row in self.rows]}, indent=1)  # fmt: skip


def verdict_text(row: Row) -> str:
    if row.verdict == "fail":
        return f"FAIL {row.failed}/{row.cases}"
    if row.verdict == "pass":
        return f"pass {row.cases}"
    return row.verdict


def _bits_text(bits: float | None) -> str:
    if bits is None:
        return "-"
    return "exact" if math.isinf(bits) else f"{bits:.1f}"


def _cause_text(row: Row) -> str:
    """The commonest cause with its count (the others are in the JSON), and refusals."""
    if row.note:
        return row.note
    parts = []
    if row.causes:
        cause, count = next(iter(row.causes.items()))
        parts.append(f"[{count}] {cause}")
        if len(row.causes) > 1:
            parts.append(f"and {len(row.causes) - 1} other causes")
    if row.refused:
        parts.append(f"{row.refused} cases refused ({row.refusal[:80]})")
    return "; ".join(parts)
