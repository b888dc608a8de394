"""Measured peak memory of building fixtures against the estimate the sweeps check first.

``uscale_ref.golden.resources.needs`` must be an upper bound of what building a case
takes, or a sweep that the check let through can still run out of memory. Each case
is built in a fresh process (its peak resident memory is its own, the interpreter and
NumPy included), as a sweep's worker does.

    python benchmarks/memory_estimate.py [--quick]

Prints one row per case: measured peak, estimate, and their ratio (must stay below 1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
from uscale_ref.golden import CaseSpec
from uscale_ref.golden.sweep import build_case
from uscale_ref.golden.resources import needs
spec = CaseSpec(**json.loads(sys.argv[1]))
build_case(spec)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"id": spec.id, "peak": peak, "estimate": needs(spec)[0]}))
"""

LAYERS = {
    "(8, 256, 4096, 256, 9)": {"kernel_size": 9, "batch_size": 8, "in_channels": 256,
                               "out_channels": 256, "length": 4096, "padding": "same"},
    "(4, 512, 16384, 512, 9)": {"kernel_size": 9, "batch_size": 4, "in_channels": 512,
                                "out_channels": 512, "length": 16384, "padding": "same"},
    "(2, 1024, 2048, 1024, 31)": {"kernel_size": 31, "batch_size": 2, "in_channels": 1024,
                                  "out_channels": 1024, "length": 2048, "padding": "same"},
    "(8, 512, 4096, 512, 4), depthwise": {"kernel_size": 4, "batch_size": 8, "in_channels": 512,
                                          "out_channels": 512, "length": 4096, "groups": 512,
                                          "padding": "same"},
}  # fmt: skip


def cases(quick: bool) -> list[dict]:
    chosen = []
    for name, layer in LAYERS.items():
        for dtype in ("float32", "complex128", "bfloat16"):
            for compact in (20000, 200000):
                if compact > 20000 and (quick or not name.startswith("(8, 256")):
                    continue  # more positions: only where it takes minutes, not hours
                if quick and dtype == "bfloat16":
                    continue
                chosen.append({**layer, "dtype": dtype, "compact": compact, "_name": name})
    chosen.append({"kernel_size": 9, "batch_size": 2, "in_channels": 64, "out_channels": 64,
                   "length": 2048, "padding": "same", "dtype": "float64",
                   "_name": "whole (2, 64, 2048, 64, 9)"})  # fmt: skip
    chosen.append({"kernel_size": 9, "batch_size": 8, "in_channels": 256, "out_channels": 256,
                   "length": 4096, "padding": "same", "dtype": "float32",
                   "_name": "whole (8, 256, 4096, 256, 9)"})  # fmt: skip
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="float32 and complex128 at 20,000")
    args = parser.parse_args()
    worst = 0.0
    print(f"{'case':<62} {'peak':>9} {'estimate':>9} {'ratio':>6}")
    for case in cases(args.quick):
        name = case.pop("_name")
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(case)], check=True,
                              capture_output=True, text=True)  # fmt: skip
        row = json.loads(done.stdout.strip().splitlines()[-1])
        ratio = row["peak"] / row["estimate"]
        worst = max(worst, ratio)
        label = f"{name} {case['dtype']}" + (f" compact {case['compact']}"
                                              if "compact" in case else "")  # fmt: skip
        print(f"{label:<62} {row['peak'] / 2**30:>8.2f}G {row['estimate'] / 2**30:>8.2f}G "
              f"{ratio:>6.2f}", flush=True)  # fmt: skip
    print(f"largest ratio of peak to estimate: {worst:.2f} (an upper bound needs < 1)")
    return 0 if worst < 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
