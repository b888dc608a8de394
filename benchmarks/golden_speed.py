"""Time and peak memory of building one fixture, beside one plain float64 forward + backward.

    python benchmarks/golden_speed.py [--repeats 3] [--shape N,C,L,O,K ...] [--dtype float32 ...]

Each measurement runs in a fresh subprocess (peak memory is the process's
own). A fixture is everything ``uscale-ref golden generate --case`` writes:
inputs, exact expected output and gradients, error scales and metadata,
``padding="same"``. The plain float64 pass is uscale_ref's own conv1d and
conv1d_backward on float64 NumPy arrays of the same shape (BLAS products,
not reproducible bit for bit); the ratio says what exactness costs.
Medians and the spread (min-max) over the repeats, alternating the two sides.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

FIXTURE = r"""
import json, resource, sys, time
from uscale_ref.golden.fixture import build
from uscale_ref.golden.suite import CaseSpec
N, C, L, O, K, dtype = json.loads(sys.argv[1])
spec = CaseSpec(dtype=dtype, kernel_size=K, batch_size=N, in_channels=C, out_channels=O,
                length=L, padding="same", suite="bench")
start = time.perf_counter()
build(spec)
seconds = time.perf_counter() - start
print(json.dumps([seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]))
"""

PLAIN = r"""
import json, resource, sys, time
import numpy as np
import uscale_ref
N, C, L, O, K, dtype = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
x, w = rng.standard_normal((N, C, L)), rng.standard_normal((O, C, K))
b, g = rng.standard_normal(O), rng.standard_normal((N, O, L))
start = time.perf_counter()
uscale_ref.conv1d(x, w, b, padding="same")
uscale_ref.conv1d_backward(g, x, w, b, padding="same")
seconds = time.perf_counter() - start
print(json.dumps([seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]))
"""

SHAPES = ["8,128,1024,128,9", "8,256,4096,256,9"]


def run(script: str, arguments: list[object]) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(arguments)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    seconds, peak = json.loads(out.strip().splitlines()[-1])
    return float(seconds), int(peak)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} s ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", help="N,C,L,O,K (repeatable)")
    parser.add_argument("--dtype", action="append", help="fixture dtype (repeatable)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split(",")) for s in (args.shape or SHAPES)]
    dtypes = args.dtype or ["float32", "float64"]
    print("shape (N, C, L, O, K)     dtype       fixture (median, range)   peak GiB"
          "   plain f64 fwd+bwd        ratio")  # fmt: skip
    for shape in shapes:
        for dtype in dtypes:
            fixture, plain, peaks = [], [], []
            for _ in range(args.repeats):
                seconds, peak = run(FIXTURE, [*shape, dtype])
                fixture.append(seconds)
                peaks.append(peak)
                plain.append(run(PLAIN, [*shape, dtype])[0])
            ratio = statistics.median(fixture) / statistics.median(plain)
            print(
                f"{shape!s:25} {dtype:11} {spread(fixture):25} {max(peaks) / 2**30:8.2f}"
                f"   {spread(plain):24} {ratio:5.1f}x",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
