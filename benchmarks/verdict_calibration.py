"""Calibrate the verdict: correct kernels pass and planted mistakes fail, at production size.

For each case (geometry x dtype, up to (8, 256, 4096, 256, 9)) this builds
the fixture, runs every correct kernel of ``tests/calibration.py`` that
applies (uscale_ref, the textbook on small cases, a plain running sum and a
pairwise sum in the accumulation format, upstream on PyTorch CPU, JAX at
precision HIGHEST when installed) and every planted mistake, and judges each
with the verdict and with the rule of format version 1 (an element-wise
``(terms + 2) u error_scale`` in the case's own unit roundoff). It prints a
table of how many cases each kernel passes or each mistake is caught in, per
dtype, by both rules, and the least room any correct kernel left: the
largest share of the bound used, the fewest bits above the required
precision, the largest bias in standard errors.

    python benchmarks/verdict_calibration.py [--quick] [--json out.jsonl] [--markdown table.md]
        [--dtype float32 ...] [--large {with,without,only}] [--tables-from a.jsonl b.jsonl]

Where PyTorch's CPU backward adds its kernel taps in bfloat16 or float16
(processors without native bfloat16 arithmetic; ``examples/torch_arithmetic.py``
reproduces it bit for bit), upstream does not accumulate in float32 and is
listed among the runs that must fail.

``--quick`` runs the smaller geometries only (a few minutes); the whole run
takes about two hours on two cores, or two processes of one BLAS thread
each over different dtypes (``--tables-from`` then prints the tables of
their rows together).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from calibration import CORRECT, MUTANTS, taps_summed_in

from uscale_ref import verdict
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build

DTYPES = ("float32", "bfloat16", "float16", "complex64", "float64")
# (N, C, L, O, K, extra arguments), padding K // 2 unless given.
GEOMETRIES: list[tuple[int, int, int, int, int, dict[str, Any]]] = [
    (2, 64, 256, 64, 5, {}),
    (4, 128, 512, 128, 9, {}),
    (4, 256, 1024, 256, 9, {}),
    (2, 384, 1024, 192, 31, {}),
    (2, 256, 1024, 256, 9, {"groups": 8}),
    (2, 256, 2048, 256, 15, {"groups": 256}),
    (4, 128, 1024, 128, 9, {"stride": 2}),
    (4, 192, 1024, 128, 5, {"dilation": 3}),
]
LARGE = [(8, 256, 4096, 256, 9, {})]
LARGE_DTYPES = ("float32", "bfloat16")
QUICK = 2  # --quick: the first geometries only
# A plain loop's work, at most (multiply-adds of the three sums); above, plain loops are skipped.
LOOP_WORK = 10**10
TEXTBOOK_WORK = 5 * 10**7


def spec_of(dtype: str, geometry: tuple[int, int, int, int, int, dict[str, Any]]) -> CaseSpec:
    n, c, length, o, k, extra = geometry
    padding = extra.get("padding", (extra.get("dilation", 1) * (k - 1)) // 2)
    return CaseSpec(
        dtype=dtype, batch_size=n, in_channels=c, length=length, out_channels=o, kernel_size=k,
        padding=padding, stride=extra.get("stride", 1), dilation=extra.get("dilation", 1),
        groups=extra.get("groups", 1), suite="calibration",
    )  # fmt: skip


def work(spec: CaseSpec) -> int:
    geometry = spec.geometry
    return (
        3 * (spec.batch_size or 1) * spec.out_channels * geometry.out_length
        * (spec.in_channels // spec.groups) * spec.kernel_size
    )  # fmt: skip


def old_rule_passes(case: Fixture, results: dict[str, np.ndarray]) -> bool:
    """Format version 1's verdict: every element within (terms + 2) u error_scale (x2 complex)."""
    u = verdict.rule_for(case.dtype).u_out
    factor = 2.0 if case.dtype.startswith("complex") else 1.0
    for name, actual in results.items():
        expected = case.expected[name]
        units = factor * (case.terms(name) + 2)
        wide = np.complex128 if np.iscomplexobj(expected) else np.float64
        with np.errstate(all="ignore"):
            error = np.abs(actual.astype(wide) - expected.astype(wide))
            if not np.all((error == 0) | (error <= units * u * case.error_scale(name))):
                return False
    return True


def measure(case: Fixture, results: dict[str, np.ndarray], arrays: tuple[str, ...]) -> dict:
    judged = verdict.judge(case, results)
    reports = [r for r in judged.arrays if r.name in arrays]
    surplus = [r.precision.bits - r.precision.required for r in reports]
    tiles = [r.least_tile_bits - r.precision.required for r in reports]
    z = [max([r.bias.z, *r.bias.row_z.tolist()]) for r in reports]
    return {
        "new": all(r.passed for r in reports),
        "failed": {r.name: r.failed_checks for r in reports if not r.passed},
        "old": old_rule_passes(case, {r.name: results[r.name] for r in reports}),
        "bound": max(r.bound_ratio for r in reports),
        "bits": min(surplus),
        "tile_bits": min(tiles),
        "z": max(z),
        "whole_z": max(r.bias.z for r in reports),
    }


def run(geometries: list, dtypes: tuple[str, ...], log: Any) -> list[dict]:
    rows = []
    for geometry in geometries:
        for dtype in dtypes:
            spec = spec_of(dtype, geometry)
            start = time.perf_counter()
            arrays, metadata = build(spec)
            case = Fixture(spec.id, metadata, arrays)
            built = time.perf_counter() - start
            print(f"{spec.id}: fixture in {built:.1f} s", file=sys.stderr, flush=True)
            base = CORRECT["uscale_ref"](case)
            names = tuple(case.expected)
            kernels = dict(CORRECT)
            for name, kernel in kernels.items():
                if name == "textbook" and work(spec) > TEXTBOOK_WORK:
                    continue
                if name in ("naive loop", "pairwise sum") and work(spec) > LOOP_WORK:
                    continue
                start = time.perf_counter()
                try:
                    results = kernel(case)
                except Exception as error:  # a kernel that cannot run is noted
                    print(f"  {name}: cannot run ({type(error).__name__}: {error})",
                          file=sys.stderr)  # fmt: skip
                    continue
                correct = True
                if name == "upstream (PyTorch CPU)" and taps_summed_in(dtype):
                    # Not a float32 accumulation here: the default rule must fail it.
                    name, correct = f"upstream (PyTorch CPU, taps summed in {dtype})", False
                row = {"case": spec.id, "dtype": dtype, "kernel": name, "correct": correct,
                       **measure(case, results, names),
                       "seconds": round(time.perf_counter() - start, 2)}  # fmt: skip
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"  {name}: {'pass' if row['new'] else 'fail ' + str(row['failed'])} "
                      f"(bound {row['bound']:.2g}, bits +{row['bits']:.1f}, z {row['z']:.2g})",
                      file=sys.stderr, flush=True)  # fmt: skip
            for mutant in MUTANTS:
                if not mutant.applies(case):
                    continue
                results = mutant.make(case, base)
                row = {"case": spec.id, "dtype": dtype, "kernel": mutant.name, "correct": False,
                       **measure(case, results, mutant.arrays)}  # fmt: skip
                rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                if row["new"]:
                    print(
                        f"  MISSED: {mutant.name} (bound {row['bound']:.2g}, "
                        f"bits +{row['bits']:.1f}, z {row['z']:.2g})",
                        file=sys.stderr,
                    )
    return rows


def table(rows: list[dict]) -> str:
    """Per kernel and dtype: passes (correct kernels) or catches (mistakes), new rule / old."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    order: list[str] = []
    correct = {}
    for row in rows:
        key = (row["kernel"], row["dtype"])
        if row["kernel"] not in order:
            order.append(row["kernel"])
            correct[row["kernel"]] = row["correct"]
        good_new = row["new"] if row["correct"] else not row["new"]
        good_old = row["old"] if row["correct"] else not row["old"]
        counts[key][0] += good_new
        counts[key][1] += good_old
        counts[key][2] += 1
    dtypes = [d for d in DTYPES if any(r["dtype"] == d for r in rows)]
    lines = [
        "| kernel | expected | " + " | ".join(dtypes) + " |",
        "| --- | --- | " + " | ".join("---" for _ in dtypes) + " |",
    ]
    for kernel in order:
        cells = []
        for dtype in dtypes:
            new, old, total = counts.get((kernel, dtype), [0, 0, 0])
            cells.append("" if total == 0 else f"{new}/{total} ({old}/{total})")
        verdict_word = "pass" if correct[kernel] else "fail"
        lines.append(f"| {kernel} | {verdict_word} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def room(rows: list[dict]) -> str:
    """The least room correct kernels left, per dtype."""
    lines = [
        "| dtype | correct runs | largest share of the bound | fewest bits above required "
        "(array / tile) | largest bias z (array / row) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for dtype in DTYPES:
        mine = [r for r in rows if r["dtype"] == dtype and r["correct"]]
        if not mine:
            continue
        lines.append(
            f"| {dtype} | {len(mine)} | {max(r['bound'] for r in mine):.2g} | "
            f"{min(r['bits'] for r in mine):.1f} / {min(r['tile_bits'] for r in mine):.1f} | "
            f"{max(r['whole_z'] for r in mine):.2g} / {max(r['z'] for r in mine):.2g} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smaller geometries only")
    parser.add_argument("--json", default="verdict_calibration.jsonl", help="one row per run")
    parser.add_argument("--markdown", help="write the tables here too")
    parser.add_argument("--dtype", action="append", help="only these dtypes")
    parser.add_argument(
        "--large",
        choices=["with", "without", "only"],
        default="with",
        help="the (8, 256, 4096, 256, 9) cases (float32 and bfloat16)",
    )
    parser.add_argument(
        "--tables-from",
        nargs="+",
        metavar="JSONL",
        help="print the tables of earlier runs' rows instead of running",
    )
    args = parser.parse_args()
    dtypes = tuple(args.dtype or DTYPES)
    if args.tables_from:
        rows = [json.loads(line) for path in args.tables_from for line in open(path)]
    else:
        geometries = GEOMETRIES[:QUICK] if args.quick else GEOMETRIES
        with open(args.json, "w") as log:
            rows = [] if args.large == "only" else run(geometries, dtypes, log)
            if not args.quick and args.large != "without":
                rows += run(LARGE, tuple(d for d in LARGE_DTYPES if d in dtypes), log)
    cases = len({r["case"] for r in rows})
    text = (
        f"{cases} cases. Cells: new rule / runs (old rule / runs); for correct kernels the runs "
        "that pass, for mistakes the runs that fail.\n\n" + table(rows) + "\n\n" + room(rows)
    )
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    false_failures = [r for r in rows if r["correct"] and not r["new"]]
    missed = [r for r in rows if not r["correct"] and r["new"]]
    print(f"\n{len(false_failures)} false failures, {len(missed)} mistakes missed")
    return 1 if false_failures or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
