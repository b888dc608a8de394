"""Speed of uscale_ref against upstream unit_scaling + torch autograd.

``uscale-ref bench`` (or ``python benchmarks/bench.py``). One process;
repetitions are interleaved in rounds (a few of ours, a few of torch's, again)
so that both see the same machine state over the run, and medians are
reported. Between shapes the run also samples this
machine's float32 matmul GFLOP/s, so the conv figures read as a fraction of
what its BLAS can do. Torch is optional: without it only our times print.

``--device cpu`` (the default) runs uscale_ref on NumPy against torch on the
CPU; ``--device cuda`` runs it on CuPy against torch on the GPU, waiting for
the device to finish after every timed call (GPU calls return before their
work is done).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..functional import conv1d, conv1d_backward


@dataclass(frozen=True)
class Shape:
    """One benchmark problem: (N, C, L, O, K, stride, padding, dilation, groups, dtype)."""

    N: int
    C: int
    L: int
    O: int  # noqa: E741 - output channels, as in the shape labels
    K: int
    stride: int
    padding: int
    dilation: int
    groups: int
    dtype: str
    note: str = ""
    extra: bool = False  # not one of the core shapes (float16, the 31-tap kernel)

    @property
    def label(self) -> str:
        text = (
            f"{self.N},{self.C},{self.L},{self.O},{self.K},{self.stride},{self.padding},"
            f"{self.dilation},{self.groups},{self.dtype}"
        )
        return f"{text} {self.note}".strip()

    @property
    def kwargs(self) -> dict[str, Any]:
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
        }

    def out_length(self) -> int:
        span = self.dilation * (self.K - 1) + 1
        return (self.L + 2 * self.padding - span) // self.stride + 1

    def forward_flops(self) -> float:
        """Real floating-point operations of the forward sums (a complex MAC counts 8)."""
        macs = self.N * self.O * self.out_length() * (self.C // self.groups) * self.K
        return macs * (8 if self.dtype.startswith("c") else 2)


SHAPES = [
    Shape(2, 8, 64, 8, 3, 1, 1, 1, 1, "f32", "tiny"),
    Shape(8, 64, 1024, 64, 5, 1, 2, 1, 1, "f32"),
    Shape(8, 128, 1024, 128, 9, 1, 4, 1, 1, "f32"),
    Shape(4, 256, 2048, 256, 3, 1, 1, 1, 1, "f32"),
    Shape(8, 256, 2048, 256, 7, 1, 3, 1, 256, "f32", "depthwise"),
    Shape(8, 64, 2048, 64, 3, 1, 8, 8, 1, "f32", "dilated"),
    Shape(8, 64, 4096, 128, 4, 4, 0, 1, 1, "f32", "strided"),
    Shape(4, 128, 1024, 128, 5, 2, 2, 1, 4, "f64", "grouped"),
    Shape(4, 64, 1024, 64, 5, 1, 2, 1, 1, "c64", "complex"),
    Shape(8, 128, 512, 128, 31, 1, 15, 1, 1, "f32", "large kernel", extra=True),
    Shape(8, 64, 1024, 64, 5, 1, 2, 1, 1, "f16", "half", extra=True),
]


@dataclass(frozen=True)
class Platform:
    """Where a benchmark runs: uscale_ref's array library, torch's device, how to wait.

    ``synchronize`` returns once all work queued on the device has finished;
    a timed call is only over then. ``matmul_size`` is the side of the square
    float32 matrices whose product gives the reference rate. ``torch_usable``
    is false where the installed torch cannot reach ``torch_device`` (a CPU
    build on a GPU machine); the run then times uscale_ref alone.
    """

    name: str
    xp: Any
    torch_device: str
    synchronize: Callable[[], None] = field(default=lambda: None)
    matmul_size: int = 2048
    library: str = "NumPy's BLAS"
    torch_usable: bool = True

    def to_ours(self, a: np.ndarray) -> Any:
        """A host array as an array of uscale_ref's library on this target."""
        return self.xp.asarray(a)


def cpu_platform() -> Platform:
    """NumPy for uscale_ref, torch on the CPU."""
    return Platform("cpu", np, "cpu")


def cuda_platform() -> Platform:
    """CuPy for uscale_ref, torch on the same GPU, both computing float32 in float32.

    Raises ``ValueError`` when CuPy is not installed or sees no GPU.
    """
    try:
        import cupy
    except ImportError:
        raise ValueError(
            "--device cuda needs CuPy and an NVIDIA GPU (pip install cupy-cuda12x)"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver: CUDARuntimeError, or a missing library
        raise ValueError(f"--device cuda: CuPy cannot reach a GPU ({error})") from None
    if count == 0:
        raise ValueError("--device cuda: CuPy is installed but finds no GPU")
    torch, _ = _load_torch()
    use_torch = torch is not None and torch.cuda.is_available()
    if use_torch:
        # Equal precision on both sides: CuPy computes float32 in float32, while
        # torch's GPU convolutions round their multiplicands to TF32 by default.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    def synchronize() -> None:
        # Both libraries queue work on the same device; wait for each.
        cupy.cuda.Device().synchronize()
        if use_torch:
            torch.cuda.synchronize()

    return Platform(
        "cuda",
        cupy,
        "cuda",
        synchronize,
        matmul_size=8192,
        library="CuPy",
        torch_usable=use_torch,
    )


PLATFORMS = {"cpu": cpu_platform, "cuda": cuda_platform}

DTYPES = {"f16": np.float16, "f32": np.float32, "f64": np.float64, "c64": np.complex64}


def make_arrays(shape: Shape, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    dtype = DTYPES[shape.dtype]

    def draw(*dims: int) -> np.ndarray:
        a = rng.standard_normal(dims)
        if np.dtype(dtype).kind == "c":
            a = a + 1j * rng.standard_normal(dims)
        return a.astype(dtype)

    x = draw(shape.N, shape.C, shape.L)
    w = draw(shape.O, shape.C // shape.groups, shape.K)
    b = draw(shape.O)
    g = draw(shape.N, shape.O, shape.out_length())
    return x, w, b, g


def ours(
    shape: Shape, arrays: tuple[np.ndarray, ...], target: Platform | None = None
) -> dict[str, Callable[[], object]]:
    target = target or cpu_platform()
    x, w, b, g = (target.to_ours(a) for a in arrays)

    def forward() -> object:
        return conv1d(x, w, b, **shape.kwargs)

    def forward_backward() -> object:
        conv1d(x, w, b, **shape.kwargs)
        return conv1d_backward(g, x, w, b, **shape.kwargs)

    return {"fwd": forward, "fwd+bwd": forward_backward}


def theirs(
    shape: Shape,
    arrays: tuple[np.ndarray, ...],
    torch: Any,
    upstream: Any,
    device: str = "cpu",
) -> dict[str, Callable[[], object]]:
    x, w, b, g = (torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays)

    def forward() -> object:
        with torch.no_grad():
            return upstream.conv1d(x, w, b, **shape.kwargs)

    def forward_backward() -> object:
        xs, ws, bs = (t.detach().requires_grad_() for t in (x, w, b))
        y = upstream.conv1d(xs, ws, bs, **shape.kwargs)
        y.backward(g)
        return xs.grad, ws.grad, bs.grad

    return {"fwd": forward, "fwd+bwd": forward_backward}


def _seconds(function: Callable[[], object], synchronize: Callable[[], None]) -> float:
    start = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - start


def matmul_gflops(repeats: int, target: Platform | None = None) -> list[float]:
    """Float32 GFLOP/s of square matrix products on ``target``, one per repeat.

    The matrices are ``target.matmul_size`` on a side (2048 on the CPU).
    """
    target = target or cpu_platform()
    size = target.matmul_size
    rng = np.random.default_rng(0)
    a, b = (target.to_ours(rng.standard_normal((size, size), dtype=np.float32)) for _ in "ab")

    def product() -> object:
        return target.xp.matmul(a, b)

    _seconds(product, target.synchronize)
    return [2 * size**3 / _seconds(product, target.synchronize) / 1e9 for _ in range(repeats)]


def _load_torch() -> tuple[Any, Any]:
    try:
        import torch
        import unit_scaling.functional as upstream
    except ImportError:
        return None, None
    return torch, upstream


def run(
    repeats: int, shapes: list[Shape], with_torch: bool = True, target: Platform | None = None
) -> tuple[list[dict[Any, Any]], list[float]]:
    """Median seconds per (implementation, pass) for every shape, and matmul rates.

    The matrix-product rate is sampled before every shape, so that it is
    measured under the same conditions as the convolutions around it (on a
    shared virtual machine the rate drifts by tens of percent over minutes).
    """
    target = target or cpu_platform()
    torch, upstream = _load_torch() if with_torch and target.torch_usable else (None, None)
    wait = target.synchronize
    rng = np.random.default_rng(0)
    rows = []
    rates: list[float] = []
    for shape in shapes:
        rates += matmul_gflops(max(1, min(3, repeats)), target)
        arrays = make_arrays(shape, rng)
        contenders = {"ours": ours(shape, arrays, target)}
        if torch is not None:
            contenders["torch"] = theirs(shape, arrays, torch, upstream, target.torch_device)
        times: dict[tuple[str, str], list[float]] = {}
        for who, calls in contenders.items():  # warm-up
            for what, call in calls.items():
                call()
                wait()
                times[(who, what)] = []
        # Interleaved in rounds: each round times every contender a few times in
        # a row. (Alternating call by call would charge each side for the other's
        # idle threads still spinning on the two cores: OpenMP and OpenBLAS
        # workers busy-wait for a while after a parallel region.)
        per_round = max(1, min(3, repeats))
        for round_start in range(0, repeats, per_round):
            count = min(per_round, repeats - round_start)
            for who, calls in contenders.items():
                for what in ("fwd", "fwd+bwd"):
                    calls[what]()  # settles this side's threads after the other's
                    wait()
                    times[(who, what)].extend(_seconds(calls[what], wait) for _ in range(count))
        row: dict[Any, Any] = {"shape": shape}
        row.update({key: statistics.median(values) for key, values in times.items()})
        rows.append(row)
    return rows, rates


def _worker(side: str, shape_index: int, repeats: int, device: str) -> dict[str, list[float]]:
    """Time one side on one shape in this process (the parent started it for that alone)."""
    target = PLATFORMS[device]()
    shape = SHAPES[shape_index]
    arrays = make_arrays(shape, np.random.default_rng(shape_index))
    if side == "ours":
        calls = ours(shape, arrays, target)
    else:
        torch, upstream = _load_torch()
        if torch is None:
            raise SystemExit("torch and unit-scaling are not installed")
        calls = theirs(shape, arrays, torch, upstream, target.torch_device)
    times: dict[str, list[float]] = {}
    for what, call in calls.items():
        # Warm up: a fresh process starts its thread pools and caches lazily.
        start, count = time.perf_counter(), 0
        while count < 5 or time.perf_counter() - start < 0.3:
            call()
            target.synchronize()
            count += 1
        times[what] = [_seconds(call, target.synchronize) for _ in range(repeats)]
    return times


def run_separate(
    repeats: int,
    rounds: int,
    shapes: list[Shape],
    with_torch: bool = True,
    target: Platform | None = None,
) -> tuple[list[dict[Any, Any]], list[float]]:
    """Each side in its own process, alternated over ``rounds``: medians and their spread.

    In one process the two libraries' thread pools (OpenBLAS, PyTorch's
    OpenMP) compete for the same cores and slow each other, PyTorch most
    (up to 2.5x measured here); a fresh process per side and round leaves
    each alone with the machine. Sides alternate which goes first. A row
    holds the median over all timed calls of a side and pass, and
    ``("spread", side, pass)``: the lowest and highest of the per-round
    medians.
    """
    import json
    import subprocess
    import sys

    target = target or cpu_platform()
    sides = ["ours"]
    if with_torch and target.torch_usable and _load_torch()[0] is not None:
        sides.append("torch")
    rows, rates = [], []
    for shape in shapes:
        rates += matmul_gflops(max(1, min(3, repeats)), target)
        index = SHAPES.index(shape)
        samples: dict[tuple[str, str], list[float]] = {}
        per_round: dict[tuple[str, str], list[float]] = {}
        for number in range(rounds):
            for side in sides if number % 2 == 0 else sides[::-1]:
                command = [sys.executable, "-m", "uscale_ref.tools.benchmark", "--worker", side,
                           "--shape-index", str(index), "--repeats", str(repeats),
                           "--device", target.name]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True, check=True)
                for what, values in json.loads(done.stdout.strip().splitlines()[-1]).items():
                    samples.setdefault((side, what), []).extend(values)
                    per_round.setdefault((side, what), []).append(statistics.median(values))
        row: dict[Any, Any] = {"shape": shape}
        for key, values in samples.items():
            row[key] = statistics.median(values)
            row[("spread", key[0], key[1])] = (min(per_round[key]), max(per_round[key]))
        rows.append(row)
    return rows, rates


def _geometric_mean(values: list[float]) -> float:
    return math.exp(statistics.mean(math.log(v) for v in values))


def report(
    rows: list[dict[Any, Any]],
    rates: list[float],
    markdown: bool = False,
    target: Platform | None = None,
) -> str:
    """The table, the ratios' geometric means and the matmul reference as text.

    "% of matmul" divides by the median of the sampled matrix-product rates.
    """
    target = target or cpu_platform()
    peak = statistics.median(rates)
    have_torch = ("torch", "fwd") in rows[0]
    spread = ("spread", "ours", "fwd") in rows[0]
    header = ["N,C,L,O,K,s,p,d,g,dtype", "fwd ms", "fwd+bwd ms"]
    if have_torch:
        header += ["torch fwd ms", "torch fwd+bwd ms", "fwd ratio", "fwd+bwd ratio"]
    if spread:
        header += ["round medians fwd+bwd (ours; torch) ms"]
    header += ["GFLOP/s", "% of matmul"]
    lines = []
    ratios: list[tuple[Shape, float, float]] = []
    for row in rows:
        shape = row["shape"]
        t_f, t_fb = row[("ours", "fwd")], row[("ours", "fwd+bwd")]
        cells = [shape.label, f"{t_f * 1e3:.2f}", f"{t_fb * 1e3:.2f}"]
        if have_torch:
            u_f, u_fb = row[("torch", "fwd")], row[("torch", "fwd+bwd")]
            ratios.append((shape, t_f / u_f, t_fb / u_fb))
            cells += [
                f"{u_f * 1e3:.2f}",
                f"{u_fb * 1e3:.2f}",
                f"{t_f / u_f:.2f}",
                f"{t_fb / u_fb:.2f}",
            ]
        if spread:
            text = "{:.2f}-{:.2f}".format(*(1e3 * v for v in row[("spread", "ours", "fwd+bwd")]))
            if have_torch:
                low, high = row[("spread", "torch", "fwd+bwd")]
                text += f"; {1e3 * low:.2f}-{1e3 * high:.2f}"
            cells.append(text)
        gflops = 3 * shape.forward_flops() / t_fb / 1e9
        cells += [f"{gflops:.1f}", f"{100 * gflops / peak:.0f}%"]
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
    else:
        widths = [max(len(c) for c in column) for column in zip(header, *lines, strict=True)]
        out = [
            "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
            for cells in [header, *lines]
        ]
    out.append("")
    for title, chosen in (
        ("the core shapes", [r for r in ratios if not r[0].extra]),
        ("all shapes", ratios),
    ):
        if chosen:
            out.append(
                f"geometric mean ratio ours/torch over {title}: forward "
                f"{_geometric_mean([r[1] for r in chosen]):.2f}, forward+backward "
                f"{_geometric_mean([r[2] for r in chosen]):.2f}; worst forward+backward "
                f"{max(r[2] for r in chosen):.2f}"
            )
    out.append(
        f"float32 matmul ({target.matmul_size}^3) with {target.library} here: "
        f"median {peak:.1f} GFLOP/s "
        f"over {len(rates)} samples taken between shapes (range {min(rates):.1f}-{max(rates):.1f})"
    )
    return "\n".join(out)


def describe_machine(target: Platform | None = None) -> str:
    target = target or cpu_platform()
    parts = [platform.machine(), f"{os.cpu_count()} CPUs", f"numpy {np.__version__}"]
    if target.xp is not np:
        version = getattr(target.xp, "__version__", "")
        parts.append(f"uscale_ref on {target.library} {version}".rstrip())
    if target.name == "cuda":
        props = target.xp.cuda.runtime.getDeviceProperties(target.xp.cuda.Device().id)
        name = props["name"]
        parts.append(name.decode() if isinstance(name, bytes) else str(name))
    torch, _ = _load_torch()
    if torch is not None and target.torch_usable:
        parts.append(
            f"torch {torch.__version__} on {target.torch_device} "
            f"({torch.get_num_threads()} CPU threads)"
        )
    elif torch is not None:
        parts.append(f"torch {torch.__version__} cannot use {target.torch_device}: ours alone")
    return ", ".join(parts)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=_positive, default=7, help="timed repetitions per call")
    parser.add_argument("--quick", action="store_true", help="the first three shapes only")
    parser.add_argument("--only", help="only shapes whose label contains this text")
    parser.add_argument("--no-torch", action="store_true", help="time uscale_ref alone")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--device",
        choices=sorted(PLATFORMS),
        default="cpu",
        help="cpu: NumPy against torch CPU (default); cuda: CuPy against torch CUDA",
    )
    parser.add_argument(
        "--rounds", type=_positive, default=3,
        help="processes per side and shape, alternating which side goes first (default 3)",
    )  # fmt: skip
    parser.add_argument(
        "--same-process", action="store_true",
        help="time both sides in this one process (the old method: their thread pools compete)",
    )  # fmt: skip


def run_from_arguments(args: argparse.Namespace) -> int:
    shapes = SHAPES[:3] if args.quick else SHAPES
    if args.only:
        shapes = [s for s in shapes if args.only in s.label]
    if not shapes:
        raise ValueError(f"no benchmark shape matches --only {args.only!r}")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    target = PLATFORMS[args.device]()
    print(describe_machine(target))
    if args.same_process:
        rows, rates = run(args.repeats, shapes, with_torch=not args.no_torch, target=target)
    else:
        print(f"each side in its own process, {args.rounds} alternating rounds per shape")
        rows, rates = run_separate(
            args.repeats, args.rounds, shapes, with_torch=not args.no_torch, target=target
        )
    print(report(rows, rates, args.markdown, target))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--worker", choices=["ours", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--shape-index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import json

        times = _worker(args.worker, args.shape_index, args.repeats, args.device)
        print(json.dumps(times))
        return 0
    return run_from_arguments(args)


if __name__ == "__main__":
    raise SystemExit(main())
