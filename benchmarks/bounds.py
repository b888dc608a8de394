"""How fast could a convolution on this machine be at all? Floors from the hardware, per shape.

For each core benchmark shape this script computes the two
floors no implementation of the forward + backward pass can beat here:

compute
    the real floating-point operations (forward, dgrad and wgrad each do
    ``N O L_out C_g K`` multiply-adds; a complex one is four real products
    and four additions) at the rate of this machine's matrix product in
    that dtype (``sgemm``, ``dgemm``, or ``cgemm`` counted in real
    operations), measured here on 2048-square matrices;
memory
    the bytes that must move at least once (the forward reads input, weight
    and bias and writes the output; the backward reads the gradient, the
    input and the weight and writes the three gradients) at the bandwidth
    of a large copy.

The larger of the two is the floor. With ``--compare`` it also times
uscale_ref and upstream + PyTorch the way ``uscale-ref bench`` does (each
side in its own process, alternating) and prints each side's time as a
multiple of the floor, and the ratio ours/torch that reaching the floor
would give: for a shape where ``0.75 x`` torch's time is below the floor, a
forward + backward ratio of 0.75 is out of reach for any code on this
machine.

    python benchmarks/bounds.py [--compare] [--rounds 3] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from uscale_ref.tools.benchmark import SHAPES, Shape, run_separate

DTYPES = {"f32": np.float32, "f64": np.float64, "c64": np.complex64}


def _median_seconds(function: Callable[[], object], repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rate(dtype: str, size: int = 2048, repeats: int = 5) -> float:
    """Real GFLOP/s of a ``size``-square matrix product in ``dtype`` (complex: 8 per MAC)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(DTYPES[dtype])
    if dtype.startswith("c"):
        a = a + 1j * a[::-1]
    flops = size**3 * (8 if dtype.startswith("c") else 2)
    return flops / _median_seconds(lambda: a @ a, repeats) / 1e9


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """GB/s moved (read plus write) by a copy of a large array into another."""
    source = np.ones(megabytes * 2**20 // 4, np.float32)
    target = np.empty_like(source)
    seconds = _median_seconds(lambda: np.copyto(target, source), repeats)
    return 2 * source.nbytes / seconds / 1e9


def pass_bytes(shape: Shape) -> int:
    """Bytes the forward + backward must read or write at least once."""
    itemsize = np.dtype(DTYPES[shape.dtype]).itemsize
    x = shape.N * shape.C * shape.L
    w = shape.O * (shape.C // shape.groups) * shape.K
    y = shape.N * shape.O * shape.out_length()
    forward = x + w + shape.O + y
    backward = y + x + w + x + w + shape.O
    return itemsize * (forward + backward)


def floors(shape: Shape, rates: dict[str, float], bandwidth: float) -> tuple[float, float]:
    """Seconds of (compute, memory) floor for the forward + backward of ``shape``."""
    compute = 3 * shape.forward_flops() / (rates[shape.dtype] * 1e9)
    memory = pass_bytes(shape) / (bandwidth * 1e9)
    return compute, memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true", help="also time uscale_ref and torch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    shapes = [s for s in SHAPES if not s.extra]
    rates = {dtype: matmul_rate(dtype) for dtype in DTYPES}
    bandwidth = copy_bandwidth()
    print("matrix product (2048^3), real GFLOP/s: " + ", ".join(
        f"{dtype} {rate:.1f}" for dtype, rate in rates.items()))  # fmt: skip
    print(f"copy bandwidth (read + write): {bandwidth:.1f} GB/s")
    rows = {}
    if args.compare:
        measured, _ = run_separate(args.repeats, args.rounds, shapes)
        rows = {row["shape"]: row for row in measured}
    header = "| shape | GFLOP | MB moved | floor ms (bound) |"
    if rows:
        header += " torch ms | ours ms | torch / floor | ours / floor | floor / torch |"
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for shape in shapes:
        compute, memory = floors(shape, rates, bandwidth)
        floor = max(compute, memory)
        bound = "compute" if compute >= memory else "memory"
        cells = [
            shape.label,
            f"{3 * shape.forward_flops() / 1e9:.2f}",
            f"{pass_bytes(shape) / 2**20:.0f}",
            f"{floor * 1e3:.2f} ({bound})",
        ]
        if rows:
            theirs = rows[shape][("torch", "fwd+bwd")]
            ours = rows[shape][("ours", "fwd+bwd")]
            cells += [
                f"{theirs * 1e3:.2f}",
                f"{ours * 1e3:.2f}",
                f"{theirs / floor:.2f}",
                f"{ours / floor:.2f}",
                f"{floor / theirs:.2f}",
            ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
