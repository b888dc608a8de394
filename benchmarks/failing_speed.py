"""How long a failing verdict takes against a passing one, the kernel's own time excluded.

Runs ``assert_conv1d`` on one case with a correct kernel (uscale_ref) and with
mistaken ones (the output's scale off by 1e-4, one batch item off by 1e-3,
grad_weight's last tap dropped, every array off by 1e-3), and ``uscale-ref golden
check`` on a fixture folder with correct and mistaken results (in this process,
and for the compact fixture also as a command of its own), and prints each run's
verdict time (wall time less the kernel's) and its ratio to the passing run's.
Each run is repeated; medians and ranges are printed.

    python benchmarks/failing_speed.py [--repeats 3]
        [--case "dtype=float32,N=8,C=256,L=1024,O=256,K=9,padding=same"]
        [--check "dtype=float32,N=8,C=256,L=4096,O=256,K=9,padding=same"]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np

import uscale_ref
from uscale_ref import golden
from uscale_ref.cli import main as cli
from uscale_ref.golden import Fixture
from uscale_ref.testing import assert_conv1d


class Timed:
    """A forward and backward that count their own time."""

    def __init__(self, mistake: str | None) -> None:
        self.mistake = mistake
        self.seconds = 0.0

    def forward(self, x, w, b, **kwargs):
        start = time.perf_counter()
        y = uscale_ref.conv1d(x, w, b, **kwargs)
        if self.mistake == "scale":
            y = (y.astype(np.float64) * (1 + 1e-4)).astype(y.dtype)
        elif self.mistake == "all":
            y = (y.astype(np.float64) * (1 + 1e-3)).astype(y.dtype)
        elif self.mistake == "item":
            y = y.copy()
            y[1] = (y[1].astype(np.float64) * (1 + 1e-3)).astype(y.dtype)
        self.seconds += time.perf_counter() - start
        return y

    def backward(self, g, x, w, b, **kwargs):
        start = time.perf_counter()
        grads = uscale_ref.conv1d_backward(g, x, w, b, **kwargs)
        if self.mistake == "all":
            scaled = {k: (v.astype(np.float64) * (1 + 1e-3)).astype(v.dtype)
                      for k, v in grads._asdict().items() if v is not None}  # fmt: skip
            grads = grads._replace(**scaled)
        if self.mistake == "tap":
            weight = grads.grad_weight.copy()
            weight[..., -1] = 0
            grads = grads._replace(grad_weight=weight)
        self.seconds += time.perf_counter() - start
        return grads


MISTAKES = (None, "scale", "item", "tap", "all")


def runner(folder: Path, fixture: Fixture, mistake: str | None) -> float:
    kernel = Timed(mistake)
    start = time.perf_counter()
    try:
        assert_conv1d(kernel.forward, kernel.backward, golden_dir=folder, filter=fixture.id,
                      drawn=0)  # fmt: skip
    except AssertionError:
        pass
    return time.perf_counter() - start - kernel.seconds


def check(
    folder: Path, fixture: Fixture, mistake: str | None, compact: bool, command: bool = False
) -> float:
    results = folder / f"results-{mistake}"
    results.mkdir(exist_ok=True)
    x, w, b, g = (fixture.input(k) for k in ("input", "weight", "bias", "grad_output"))
    kernel = Timed(mistake)
    arrays = {"output": kernel.forward(x, w, b, **fixture.kwargs),
              **kernel.backward(g, x, w, b, **fixture.kwargs)._asdict()}  # fmt: skip
    np.savez(results / f"{fixture.id}.npz", **{k: v for k, v in arrays.items() if v is not None})
    arguments = ["golden", "check", str(results), "--golden", str(folder)]
    start = time.perf_counter()
    if command:  # a fresh interpreter: start-up and imports included
        subprocess.run([sys.executable, "-m", "uscale_ref", *arguments], capture_output=True)
    else:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            cli(arguments)
    return time.perf_counter() - start


def report(label: str, times: dict[str | None, list[float]]) -> None:
    base = statistics.median(times[None])
    print(f"{label}")
    for mistake, values in times.items():
        median = statistics.median(values)
        print(f"  {mistake or 'correct':<8} {median:6.2f} s [{min(values):.2f}, {max(values):.2f}]"
              f"  {median / base:4.2f}x the pass")  # fmt: skip
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="dtype=float32,N=8,C=256,L=1024,O=256,K=9,padding=same")
    parser.add_argument("--check", default="dtype=float32,N=8,C=256,L=4096,O=256,K=9,padding=same")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            cli(["golden", "generate", "--out", folder, "--case", args.case, "--jobs", "1"])
        (case_id,) = [p.stem for p in Path(folder).glob("*.npz")]
        fixture = golden.load(case_id, folder)
        times: dict[str | None, list[float]] = {m: [] for m in MISTAKES}
        for _ in range(args.repeats):
            for mistake in MISTAKES:
                times[mistake].append(runner(Path(folder), fixture, mistake))
        report(f"assert_conv1d, {case_id} (loaded from a folder)", times)
    for compact in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            text = args.check + (",compact=20000" if compact else "")
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                cli(["golden", "generate", "--out", folder, "--case", text, "--jobs", "1"])
            (case_id,) = [p.stem for p in Path(folder).glob("*.npz")]
            loaded = golden.load(case_id, folder)
            times = {m: [] for m in MISTAKES}
            for _ in range(args.repeats):
                for mistake in MISTAKES:
                    times[mistake].append(check(Path(folder), loaded, mistake, compact))
            report(f"golden check, {case_id}", times)
            if compact:
                times = {m: [] for m in MISTAKES}
                for _ in range(args.repeats):
                    for mistake in MISTAKES:
                        times[mistake].append(check(Path(folder), loaded, mistake, True, True))
                report(f"uscale-ref golden check (a command), {case_id}", times)


if __name__ == "__main__":
    main()
