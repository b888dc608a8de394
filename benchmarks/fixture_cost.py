"""Time, peak memory and file size of fixtures: compact ones at production sizes, and whole
ones beside uscale_ref's own float64 forward + backward of the same shape.

Each measurement runs in a fresh process (so that its peak memory is its own),
alternating, and is repeated; the medians and the spread are printed.

    python benchmarks/fixture_cost.py [--repeats 3] [--skip-huge]

Cases:

* compact (8, 256, 4096, 256, 9) float32 'same', 20,000 positions per array
  (target: at most 2 MB and 5 s on two cores);
* compact (32, 1024, 65536, 1024, 9) float32 'same', 20,000 positions per
  array, whose whole output alone would take 8 GiB (target: 2 minutes, 2 GiB);
* whole (8, 256, 4096, 256, 9) in float32 and float64, each beside a plain
  float64 forward + backward of that shape by uscale_ref.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
if spec.pop("plain", False):
    import uscale_ref
    shape = (spec["batch_size"], spec["in_channels"], spec["length"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((spec["out_channels"], spec["in_channels"], spec["kernel_size"]))
    b = np.zeros(spec["out_channels"])
    start = time.perf_counter()
    y = uscale_ref.conv1d(x, w, b, padding="same")
    uscale_ref.conv1d_backward(y, x, w, b, padding="same")
    seconds, size = time.perf_counter() - start, 0
else:
    from uscale_ref.golden import CaseSpec
    from uscale_ref.golden.fixture import build, to_bytes
    case = CaseSpec(**spec)
    start = time.perf_counter()
    arrays, metadata = build(case)
    data = to_bytes(arrays, metadata)
    seconds, size = time.perf_counter() - start, len(data)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "peak": peak, "size": size}))
"""

LAYER = {"kernel_size": 9, "batch_size": 8, "in_channels": 256, "out_channels": 256,
         "length": 4096, "padding": "same"}  # fmt: skip
GPU_LAYER = {**LAYER, "batch_size": 32, "in_channels": 1024, "out_channels": 1024,
             "length": 65536}  # fmt: skip


def measure(spec: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-huge", action="store_true", help="skip the GPU layer")
    args = parser.parse_args()
    runs = {
        "compact float32 (8, 256, 4096, 256, 9), 20000": {**LAYER, "dtype": "float32",
                                                          "compact": 20000},
        "whole float32 (8, 256, 4096, 256, 9)": {**LAYER, "dtype": "float32"},
        "whole float64 (8, 256, 4096, 256, 9)": {**LAYER, "dtype": "float64"},
        "plain float64 forward + backward": {**LAYER, "plain": True},
    }  # fmt: skip
    if not args.skip_huge:
        runs["compact float32 (32, 1024, 65536, 1024, 9), 20000"] = {
            **GPU_LAYER, "dtype": "float32", "compact": 20000}  # fmt: skip
    results: dict[str, list[dict]] = {name: [] for name in runs}
    for repeat in range(args.repeats):
        for name, spec in runs.items():  # alternating: each round measures every case once
            if "65536" in name and repeat > 0:
                continue  # one run of the largest is enough
            results[name].append(measure(spec))
            print(f"round {repeat + 1}: {name}: {results[name][-1]}", file=sys.stderr, flush=True)
    print("| case | time (s), median [range] | peak memory (GiB) | file (MB) |")
    print("| --- | --- | --- | --- |")
    for name, found in results.items():
        times = [r["seconds"] for r in found]
        peak = max(r["peak"] for r in found) / 2**30
        size = found[0]["size"] / 1e6
        print(f"| {name} | {statistics.median(times):.2f} [{min(times):.2f}, {max(times):.2f}] "
              f"| {peak:.2f} | {size:.2f} |")  # fmt: skip
    plain = statistics.median(r["seconds"] for r in results["plain float64 forward + backward"])
    for dtype in ("float32", "float64"):
        whole = statistics.median(r["seconds"] for r in results[f"whole {dtype} (8, 256, 4096, "
                                                                 "256, 9)"])  # fmt: skip
        print(f"whole {dtype} fixture / plain float64 forward + backward: {whole / plain:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
