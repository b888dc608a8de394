"""Peak memory of conv1d and conv1d_backward on a long input, each in a fresh subprocess.

    python benchmarks/memory.py [--length 2097152] [--workspace-mb 64]

Reports the peak resident memory added by the call beyond the interpreter and
the arrays it was given, next to the size of its inputs and outputs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import numpy as np
import uscale_ref
from uscale_ref.config import set_workspace_bytes

N, C, L, O, K, which, workspace = json.loads(sys.argv[1])
set_workspace_bytes(workspace)
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
rng = np.random.default_rng(0)
x = rng.standard_normal((N, C, L), dtype=np.float32)
w = rng.standard_normal((O, C, K), dtype=np.float32)
b = np.zeros(O, np.float32)
pad = K // 2
if which == "backward":
    g = rng.standard_normal((N, O, L + 2 * pad - K + 1), dtype=np.float32)
    given = x.nbytes + w.nbytes + b.nbytes + g.nbytes
    before = peak()
    grads = uscale_ref.conv1d_backward(g, x, w, b, padding=pad)
    produced = sum(a.nbytes for a in grads)
else:
    given = x.nbytes + w.nbytes + b.nbytes
    before = peak()
    y = uscale_ref.conv1d(x, w, b, padding=pad)
    produced = y.nbytes
print(json.dumps({"given": given, "produced": produced, "before": before, "after": peak()}))
"""


def measure(which: str, length: int, workspace_mb: float) -> dict[str, float]:
    args = [1, 64, length, 64, 9, which, int(workspace_mb * 2**20)]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=2**21)
    parser.add_argument("--workspace-mb", type=float, default=64)
    args = parser.parse_args()
    mib = 2**20
    print(f"N=1, C=64, O=64, K=9, L={args.length}, float32, workspace {args.workspace_mb} MiB")
    for which in ("forward", "backward"):
        r = measure(which, args.length, args.workspace_mb)
        extra = r["after"] - r["before"]
        print(
            f"{which:<9} inputs {r['given'] / mib:7.0f} MiB  "
            f"outputs {r['produced'] / mib:7.0f} MiB  "
            f"peak added by the call {extra / mib:7.0f} MiB "
            f"= {extra / (r['given'] + r['produced']):.2f} x (inputs + outputs)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
