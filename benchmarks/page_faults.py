"""Fresh memory in the timed calls: minor page faults per forward + backward, each side alone.

Every array a call allocates from fresh memory costs a page fault per 4 KiB
page on first touch, about 2-3 us each on the virtual machine measured here
(``docs/performance.md``). Whether memory is fresh depends on the C
allocator: glibc returns large freed blocks to the system (``munmap``, or
trimming the heap's top) by thresholds it adjusts as the program runs, so
the same call can fault thousands of times in one sequence of calls and not
at all in another.

This script runs uscale_ref and upstream + PyTorch (when installed), each in
its own process as ``uscale-ref bench`` does, and prints per shape the median
minor page faults and milliseconds of a forward + backward (after warm-up).
Run it twice to see the allocator's share::

    python benchmarks/page_faults.py
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 \\
        python benchmarks/page_faults.py

(the second keeps every freed block in the process, so nothing faults twice).
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from uscale_ref.tools import benchmark


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(side: str, index: int, calls: int = 25) -> tuple[float, float]:
    """Median (page faults, seconds) of ``side``'s forward + backward on shape ``index``."""
    shape = benchmark.SHAPES[index]
    arrays = benchmark.make_arrays(shape, np.random.default_rng(index))
    if side == "ours":
        call = benchmark.ours(shape, arrays)["fwd+bwd"]
    else:
        torch, upstream = benchmark._load_torch()
        call = benchmark.theirs(shape, arrays, torch, upstream)["fwd+bwd"]
    for _ in range(5):
        call()
    faults, seconds = [], []
    for _ in range(calls):
        before, start = _faults(), time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
        faults.append(_faults() - before)
    return statistics.median(faults), statistics.median(seconds)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        print(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
        return 0
    sides = ["ours"] + (["torch"] if benchmark._load_torch()[0] is not None else [])
    print("| shape | " + " | ".join(f"{s} faults | {s} ms" for s in sides) + " |")
    print("|---|" + "---|---|" * len(sides))
    for index, shape in enumerate(benchmark.SHAPES):
        if shape.extra:
            continue
        cells = [shape.label]
        for side in sides:
            command = [sys.executable, __file__, "--worker", side, str(index)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            faults, seconds = json.loads(done.stdout.strip().splitlines()[-1])
            cells += [f"{faults:.0f}", f"{seconds * 1e3:.2f}"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
