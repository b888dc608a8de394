"""What an FP8 kernel's accumulator costs, in significant bits of its sums.

Each row: sums of n products of FP8 values (E4M3 activations and weights, or E4M3 by E5M2
gradients, all unit-scaled: drawn with variance 1, rounded into the format), accumulated
as an FP8 tensor core would: a running sum in a register of p significant bits, its
partial sum added into float32 every m products (or never), against the exact sum. The
precision is ``-log2(rms(error) / rms(sum))``: the bits the sums keep, which the verdict
compares with the bits a result format holds (bfloat16 8, float16 11, float32 24).

    python benchmarks/fp8_accumulators.py [--trials 256] [--markdown]

Independent of the library's verdict: plain NumPy, the exact sums in float64 (products of
FP8 values and their sums up to 2**15 terms are exact there).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from uscale_ref.formats import round_to
from uscale_ref.verdict.diagnosis.arithmetic import round_bits

#: Sums' lengths: a 16-channel K = 9 tap, 256 and 1024 channels at K = 9 (output and
#: grad_input), and grad_weight over a batch of 8 of 4096 positions.
LENGTHS = (144, 2304, 9216, 32768)
#: Accumulators: (name, significant bits, promotion interval or None).
ACCUMULATORS = (
    ("float32", 24, None),
    ("14 bits, promoted every 128", 14, 128),
    ("14 bits, promoted every 512", 14, 512),
    ("14 bits, never promoted", 14, None),
    ("13 bits, never promoted", 13, None),
)


def products(n: int, trials: int, seed: int) -> np.ndarray:
    """``(n, trials)`` products of an E4M3 and an E5M2 unit-variance value (exact in float64)."""
    rng = np.random.default_rng(seed)
    a = round_to(rng.standard_normal((n, trials)).astype(np.float32), "float8_e4m3fn")
    b = round_to(rng.standard_normal((n, trials)).astype(np.float32), "float8_e5m2")
    return a.astype(np.float64) * b.astype(np.float64)


def accumulated(terms: np.ndarray, bits: int, every: int | None) -> np.ndarray:
    """Running sums in a ``bits``-bit register, added into float32 every ``every`` terms."""
    if bits >= 24 and every is None:  # float32 itself
        total = np.zeros(terms.shape[1], dtype=np.float32)
        for term in terms.astype(np.float32):
            total = total + term
        return total.astype(np.float64)
    total = np.zeros(terms.shape[1], dtype=np.float32)
    register = np.zeros(terms.shape[1])
    for index, term in enumerate(terms, start=1):
        register = round_bits(register + term, bits)
        if every is not None and index % every == 0:
            total = (total + register.astype(np.float32)).astype(np.float32)
            register = np.zeros_like(register)
    return (total + register.astype(np.float32)).astype(np.float64)


def precision(n: int, bits: int, every: int | None, trials: int) -> float:
    terms = products(n, trials, seed=n)
    exact = terms.sum(axis=0)  # exact: FP8 products and their sums fit float64's 53 bits
    error = accumulated(terms, bits, every) - exact
    rms = math.sqrt(float(np.mean(error**2)))
    scale = math.sqrt(float(np.mean(exact**2)))
    return math.inf if rms == 0 else -math.log2(rms / scale)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=256)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    rows = {name: [precision(n, bits, every, args.trials) for n in LENGTHS]
            for name, bits, every in ACCUMULATORS}  # fmt: skip
    if args.markdown:
        print("| accumulator | " + " | ".join(f"n = {n:,}" for n in LENGTHS) + " |")
        print("| --- |" + " --- |" * len(LENGTHS))
        for name, values in rows.items():
            print(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    else:
        print(f"{'accumulator':<30}" + "".join(f"{'n=' + str(n):>10}" for n in LENGTHS))
        for name, values in rows.items():
            print(f"{name:<30}" + "".join(f"{v:>10.1f}" for v in values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
