"""The diagnosis at production size: each mistake of tests/catalogue.py named right, and fast.

For each case (dtype x geometry) this builds the fixture, makes every
catalogue mistake that applies, judges it (the verdict's own time, the
mistake's excluded) and diagnoses it, and prints one row per mistake: caught
or not, named right / not explained / wrong, the time of the judgement and of
the diagnosis. Correct kernels (uscale_ref in the case's dtype) are judged
too: they must pass, and so get no cause.

    python benchmarks/diagnosis_catalogue.py [--dtype float32 ...] [--quick] [--json out.jsonl]
        [--markdown table.md] [--table-from out.jsonl ...]

The default cases are (8, 256, 1024, 256, 9) float32, (4, 128, 1024, 128, 9)
complex64 (its emulated running sums are slow), (2, 256, 512, 256, 9)
bfloat16 and float16, and (4, 256, 1024, 256, 9) with groups=4, stride 2 and
dilation 3 in float32 (the mistakes that need groups or a stride);
``--quick`` runs sizes a quarter of that. The whole run takes about an hour on
two cores, most of it emulating the mistakes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from calibration import CORRECT
from catalogue import ENTRIES

from uscale_ref import verdict
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build
from uscale_ref.verdict.diagnosis import NO_CAUSE, explain

CASES: list[tuple[str, dict[str, Any]]] = [
    ("float32", {"batch_size": 8, "in_channels": 256, "length": 1024, "out_channels": 256}),
    ("complex64", {"batch_size": 4, "in_channels": 128, "length": 1024, "out_channels": 128}),
    ("bfloat16", {"batch_size": 2, "in_channels": 256, "length": 512, "out_channels": 256}),
    ("float16", {"batch_size": 2, "in_channels": 256, "length": 512, "out_channels": 256}),
    ("float32", {"batch_size": 4, "in_channels": 256, "length": 1024, "out_channels": 256,
                 "groups": 4, "stride": 2, "dilation": 3}),
]  # fmt: skip


def spec_of(dtype: str, sizes: dict[str, Any], quick: bool) -> CaseSpec:
    sizes = dict(sizes)
    if quick:
        for key in ("in_channels", "out_channels", "length"):
            sizes[key] //= 4
    dilation = sizes.get("dilation", 1)
    return CaseSpec(dtype=dtype, kernel_size=9, padding=4 * dilation, suite="diagnosis",
                    **sizes)  # fmt: skip


def verdict_of(case: Fixture, results: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    """Judge and explain ``results`` as the runner does; time each step."""
    start = time.perf_counter()
    judged = verdict.judge(case, results, keep=True)
    judged_s = time.perf_counter() - start
    row: dict[str, Any] = {"case": case.id, "dtype": case.dtype, "mistake": name,
                           "caught": not judged.passed, "judge_s": judged_s}  # fmt: skip
    start = time.perf_counter()
    explain(judged, case, results)
    row["diagnose_s"] = time.perf_counter() - start
    row["cause"] = judged.cause
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: a row per mistake, a column per case, the verdict in each cell
    (the times are printed per run: one pass measured cold is no baseline for a table)."""
    cases = list(dict.fromkeys(row["case"] for row in rows))
    mistakes = list(dict.fromkeys(row["mistake"] for row in rows))
    cell = {(row["mistake"], row["case"]): row for row in rows}
    lines = ["| mistake | " + " | ".join(f"`{c}`" for c in cases) + " |",
             "| --- |" + " --- |" * len(cases)]  # fmt: skip
    for mistake in mistakes:
        cells = []
        for case in cases:
            row = cell.get((mistake, case))
            if row is None:
                cells.append("")
                continue
            cells.append(row["named"])
        lines.append(f"| {mistake} | " + " | ".join(cells) + " |")
    totals = {name: sum(1 for r in rows if r["named"] == name) for name in
              ("right", "not explained", "WRONG", "not caught", "FALSE FAILURE")}  # fmt: skip
    lines.append("")
    lines.append(", ".join(f"{name}: {count}" for name, count in totals.items()) + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", action="append")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--table-from", type=Path, nargs="+")
    args = parser.parse_args()
    if args.table_from:
        rows = [json.loads(line) for path in args.table_from
                for line in path.read_text().splitlines() if line.strip()]  # fmt: skip
        text = table(rows)
        print(text)
        if args.markdown:
            args.markdown.write_text(text)
        return
    rows = []
    for dtype, sizes in CASES:
        if args.dtype and dtype not in args.dtype:
            continue
        spec = spec_of(dtype, sizes, args.quick)
        arrays, metadata = build(spec)
        case = Fixture(spec.id, metadata, arrays)
        print(f"== {case.id}", flush=True)
        correct = verdict_of(case, CORRECT["uscale_ref"](case), "correct (uscale_ref)")
        correct["named"] = "passes" if not correct["caught"] else "FALSE FAILURE"
        rows.append(correct)
        for entry in ENTRIES:
            if not entry.applies(case):
                continue
            row = verdict_of(case, entry.make(case), entry.name)
            cause = row["cause"]
            if not row["caught"]:
                row["named"] = "not caught"
            elif cause is None or NO_CAUSE in cause:
                row["named"] = "not explained"
            elif all(words in cause for words in entry.named):
                row["named"] = "right"
            else:
                row["named"] = "WRONG"
            rows.append(row)
        for row in rows:
            if row["case"] != case.id:
                continue
            ratio = (row["judge_s"] + row["diagnose_s"]) / max(correct["judge_s"], 1e-9)
            print(f"{row['mistake'][:60]:<60} {row['named']:<14} judge {row['judge_s']:5.2f} s "
                  f"diagnose {row['diagnose_s']:5.2f} s ({ratio:4.2f}x a pass)\n"
                  f"    {row['cause']}", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text("".join(json.dumps(row) + "\n" for row in rows))
    if args.markdown:
        args.markdown.write_text(table(rows))


if __name__ == "__main__":
    main()
