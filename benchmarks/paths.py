"""Time every kernel path on the bench's shapes, cache-blocked as planned and not.

For each shape of ``uscale-ref bench``, each op (forward, dgrad, wgrad) and
each path that can compute it, this times the kernel alone (median of
``--repeats`` calls after a warm-up) twice: with the plan's blocks as
:func:`uscale_ref.kernels.make_plan` sizes them (the cache-blocked paths cut to
``CACHE_BLOCK_BYTES``) and with blocks bounded only by the workspace. The
automatic plan's choice (a GPU's with ``--device cuda``) is marked ``*``. It
is the measurement behind the plan's rules on a new kind of device:

    python benchmarks/paths.py [--device cuda] [--only depthwise] [--repeats 10]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from typing import Any

import array_api_compat
import numpy as np

from uscale_ref import _backend, kernels
from uscale_ref.config import get_workspace_bytes
from uscale_ref.geometry import conv1d_geometry
from uscale_ref.kernels import plan as plans
from uscale_ref.tools.benchmark import PLATFORMS, SHAPES, make_arrays

OPS = ("forward", "input_grad", "weight_grad")


def run_op(xp: Any, op: str, arrays: tuple[Any, ...], geometry: Any, plan: Any) -> Any:
    x, w, b, g = arrays
    if op == "forward":
        return kernels.forward(xp, x, w, geometry, plan, bias=b)
    if op == "input_grad":
        return kernels.input_grad(xp, g, w, geometry, plan)
    return kernels.weight_grad(xp, g, x, geometry, plan)


def median_ms(call: Any, synchronize: Any, repeats: int) -> float:
    """Milliseconds per ``call()``, waited for: the median of ``repeats`` after two warm-ups."""
    for _ in range(2):
        call()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=sorted(PLATFORMS), default="cpu")
    parser.add_argument("--only", help="only shapes whose label contains this text")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    target = PLATFORMS[args.device]()
    xp = array_api_compat.array_namespace(target.to_ours(np.zeros(1, np.float32)))
    workspace = get_workspace_bytes()
    print("| shape | op | path | blocks as planned ms | unblocked ms | plan (batch, length) |")
    print("|---|---|---|---|---|---|")
    for shape in SHAPES:
        if args.only and args.only not in shape.label:
            continue
        host = make_arrays(shape, np.random.default_rng(0))
        work = _backend.compute_dtype(np, host[0].dtype)
        arrays = tuple(target.to_ours(a.astype(work)) for a in host)
        geometry = conv1d_geometry(host[0].shape, host[1].shape, **shape.kwargs)
        size = np.dtype(work).itemsize
        for op in OPS:
            chosen = kernels.make_plan(
                op, geometry, size, workspace, accelerator=args.device != "cpu"
            ).path
            for path in kernels.valid_paths(op, geometry):
                cells = []
                for cache in (plans.CACHE_BLOCK_BYTES, 2**62):
                    saved, plans.CACHE_BLOCK_BYTES = plans.CACHE_BLOCK_BYTES, cache
                    try:
                        plan = kernels.make_plan(op, geometry, size, workspace, path=path)
                    finally:
                        plans.CACHE_BLOCK_BYTES = saved
                    call = functools.partial(run_op, xp, op, arrays, geometry, plan)
                    ms = median_ms(call, target.synchronize, args.repeats)
                    cells.append((ms, plan))
                mark = "*" if path == chosen else ""
                print(
                    f"| {shape.label} | {op} | {path}{mark} | {cells[0][0]:.2f} | "
                    f"{cells[1][0]:.2f} | ({cells[0][1].batch_chunk}, "
                    f"{cells[0][1].block_length}) / ({cells[1][1].batch_chunk}, "
                    f"{cells[1][1].block_length}) |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
