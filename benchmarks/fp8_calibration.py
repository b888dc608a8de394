"""FP8 kernels held to the verdict at production size: correct ones pass, mistakes are named.

Compact cases of the unit-scaling recipe (E4M3 input and weight, E5M2 grad_output, bfloat16
results) at (8, 256, 4096, 256, 9) and (4, 1024, 2048, 1024, 3), 'same', 20,000 positions per
array; each seed a case of its own (the length grown by the seed, so other inputs). Every
kernel is emulated only where the fixture keeps values, from the exact FP8 products there:

* correct: float32 accumulation; a 14-bit register promoted to float32 every 128 products
  (declared: ``accumulate="14 bits every 128"``); unbiased stochastic rounding of the
  results (declared: ``rounding="stochastic"``);
* mistakes: a 14-bit and a 13-bit register never promoted; promotion every 512 products
  where every 128 is declared; results truncated toward zero; stochastic rounding whose
  noise is half as wide; the output scale applied twice; grad_output rounded to E4M3 where
  E5M2 belongs.

    python benchmarks/fp8_calibration.py [--seeds 3] [--first-seed 0]
        [--shape "(8, 256, 4096, 256, 9)"] [--kernels "never promoted"] [--markdown]

Prints one row per kernel: how many seeds passed, and the causes the diagnosis named.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from uscale_ref import golden
from uscale_ref.formats import round_to, spacing
from uscale_ref.golden import CaseSpec
from uscale_ref.verdict import judge
from uscale_ref.verdict.diagnosis import NO_CAUSE, _terms, explain
from uscale_ref.verdict.diagnosis.arithmetic import round_bits

RECIPE = {"input_format": "float8_e4m3fn", "weight_format": "float8_e4m3fn",
          "grad_output_format": "float8_e5m2"}  # fmt: skip
SHAPES = {
    "(8, 256, 4096, 256, 9)": {"batch_size": 8, "in_channels": 256, "out_channels": 256,
                               "length": 4096, "kernel_size": 9},
    "(4, 1024, 2048, 1024, 3)": {"batch_size": 4, "in_channels": 1024, "out_channels": 1024,
                                 "length": 2048, "kernel_size": 3},
}  # fmt: skip
BLOCK = 400  # positions whose products are held at once


def register(bits: int, every: int | None) -> Callable[[np.ndarray], np.ndarray]:
    """Sums of the rows of ``t`` in a ``bits``-bit register, into float32 every ``every``."""

    def total(t: np.ndarray) -> np.ndarray:
        wide = np.zeros(t.shape[0], dtype=np.float32)
        held = np.zeros(t.shape[0])
        for column in range(t.shape[1]):
            held = round_bits(held + t[:, column], bits)
            if every is not None and (column + 1) % every == 0:
                wide = wide + held.astype(np.float32)
                held = np.zeros_like(held)
        return (wide + held.astype(np.float32)).astype(np.float64)

    return total


def float32_sum(t: np.ndarray) -> np.ndarray:
    return np.sum(t.astype(np.float32), axis=1).astype(np.float64)


def exact_sum(t: np.ndarray) -> np.ndarray:
    return np.sum(t, axis=1)


def nearest(values: np.ndarray, rng: Any) -> np.ndarray:
    return round_to(values, "bfloat16")


def truncated(values: np.ndarray, rng: Any) -> np.ndarray:
    return round_to(values, "bfloat16", "toward_zero")


def stochastic(width: float) -> Callable[[np.ndarray, Any], np.ndarray]:
    def rounded(values: np.ndarray, rng: Any) -> np.ndarray:
        step = spacing(values, "bfloat16")
        noise = rng.random(values.shape) * width * step
        cut = np.floor((np.abs(values) + noise) / step) * step
        return np.copysign(cut, values)

    return rounded


# (name, sum, final rounding, options declared to the verdict, changes)
KERNELS: list[tuple[str, Any, Any, dict[str, Any], dict[str, Any]]] = [
    ("correct: float32 accumulation", float32_sum, nearest, {}, {}),
    ("correct: 14 bits promoted every 128 (declared)", register(14, 128), nearest,
     {"accumulate": "14 bits every 128"}, {}),
    ("correct: stochastic rounding (declared)", exact_sum, stochastic(1.0),
     {"rounding": "stochastic"}, {}),
    ("14 bits, never promoted", register(14, None), nearest, {}, {}),
    ("13 bits, never promoted", register(13, None), nearest, {}, {}),
    ("promoted every 512 where every 128 is declared", register(14, 512), nearest,
     {"accumulate": "14 bits every 128"}, {}),
    ("results truncated", exact_sum, truncated, {}, {}),
    ("stochastic rounding, noise half as wide", exact_sum, stochastic(0.5),
     {"rounding": "stochastic"}, {}),
    ("output scale applied twice", float32_sum, nearest, {}, {"twice": True}),
    ("grad_output in E4M3 where E5M2 belongs", float32_sum, nearest, {}, {"e4m3": True}),
]  # fmt: skip


def all_results(case: Any, terms: Any, seed: int) -> list[dict[str, np.ndarray]]:
    """Every kernel's results (whole arrays, right where the fixture keeps values), the
    products of each block of positions gathered once for all of them."""
    rng = [np.random.default_rng(seed) for _ in KERNELS]
    out: list[dict[str, np.ndarray]] = [{} for _ in KERNELS]
    for name in case.expected:
        flat = case.positions(name)
        values = np.empty((len(KERNELS), flat.size))
        for start in range(0, flat.size, BLOCK):
            products = terms.products(name, flat[start : start + BLOCK])
            for index, (_, total, _, _, changes) in enumerate(KERNELS):
                a, b = products.a, products.b
                if changes.get("e4m3") and name != "output":  # grad_output: b in dgrad, a else
                    if name == "grad_input":
                        b = round_to(b, "float8_e4m3fn")
                    else:
                        a = round_to(a, "float8_e4m3fn")
                twice = changes.get("twice") and name == "output"
                scale = products.scale * (products.scale if twice else 1.0)
                values[index, start : start + BLOCK] = scale * (total(a * b) + products.bias.real)
        for index, (_, _, rounding, _, _) in enumerate(KERNELS):
            whole = np.zeros(case.result_shape(name), dtype=np.float32).reshape(-1)
            whole[flat] = rounding(values[index], rng[index])
            out[index][name] = whole.reshape(case.result_shape(name))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="the seeds first-seed, first-seed + 1, ... (to split a run)",
    )
    parser.add_argument("--shape", choices=list(SHAPES), help="only this shape")
    parser.add_argument(
        "--kernels", help="only the kernels whose names hold this text (e.g. 'never promoted')"
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.kernels:
        KERNELS[:] = [kernel for kernel in KERNELS if args.kernels in kernel[0]]
        if not KERNELS:
            parser.error(f"no kernel's name holds {args.kernels!r}")
    passed: dict[str, int] = collections.Counter()
    causes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    runs = 0
    with tempfile.TemporaryDirectory() as folder:
        for label, shape in SHAPES.items():
            if args.shape is not None and label != args.shape:
                continue
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                spec = CaseSpec("bfloat16", padding="same", compact=20000, **RECIPE,
                                **{**shape, "length": shape["length"] + seed})  # fmt: skip
                golden.generate(folder, specs=[spec], progress=None)
                case = golden.load(spec.id, folder)
                terms = _terms(case)
                runs += 1
                start = time.perf_counter()
                every = all_results(case, terms, seed)
                print(f"{label} seed {seed}: kernels emulated in "
                      f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
                for kernel, results in zip(KERNELS, every, strict=True):
                    start = time.perf_counter()
                    verdict = judge(case, results, keep=True, **kernel[3])
                    explain(verdict, case, results, "exact", kernel[3].get("accumulate"))
                    passed[kernel[0]] += verdict.passed
                    if not verdict.passed:
                        causes[kernel[0]][verdict.cause or NO_CAUSE] += 1
                    print(f"{label} seed {seed}: {kernel[0]}: "
                          f"{'pass' if verdict.passed else 'FAIL: ' + str(verdict.cause)} "
                          f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    print()
    if args.markdown:
        print("| kernel | passes | cause named when it fails |")
        print("| --- | --- | --- |")
    for name, *_ in KERNELS:
        named = "; ".join(f"{cause} ({count})" for cause, count in causes[name].most_common())
        if args.markdown:
            print(f"| {name} | {passed[name]} of {runs} | {named or '-'} |")
        else:
            print(f"{name}: passes {passed[name]} of {runs}; {named}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
