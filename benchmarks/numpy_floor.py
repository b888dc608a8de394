"""How fast could a convolution written with NumPy be here? The floor set by its building blocks.

``bounds.py`` gives the hardware's floor: all the arithmetic at the rate of
a 2048-square matrix product. NumPy code cannot reach it when the products
a convolution turns into run slower than that square, or when it must move
data between them. This script times, alone, each piece that a NumPy
formulation of a unit-stride pass is made of, for the benchmark's dense
(``groups = 1``, stride 1) shapes:

forward and dgrad
    (the same correlation: rows ``R`` = O, contraction ``Q`` = C for the
    forward; ``R`` = C, ``Q`` = O for dgrad) with the batch laid end to end
    as a ``(Q, N S)`` matrix (``S`` an item's padded length):

    * *fold* and *unfold*: the copies into that order and back out of it;
    * *taps*: the ``K`` products, one per tap, ``(R, Q) @ (Q, N S)``, and
      *adding* their ``K - 1`` results up (NumPy's product cannot add into
      its output);
    * *stack* and *one product*: the ``K`` shifted copies of the folded
      matrix stacked into ``(Q K, N S)`` ("im2col"), and the single
      ``(R, Q K) @ (Q K, N S)`` product on them.

wgrad
    * *per item*: the ``K`` batched products ``(N, O, L) @ (N, L, C)`` on
      views of the input and their sum over the batch;
    * *folded*: the gradient and the input folded (two copies), then ``K``
      products ``(O, N S) @ (N S, C)``;
    * *stacked*: the input folded and stacked, then one
      ``(O, N S) @ (N S, C K)``.

A formulation needs its pieces one after the other (NumPy runs one array
operation at a time). Every piece is timed on arrays allocated beforehand,
so page faults, Python, the bias and the scale are left out: the sum is what
code of that form could at best take here, not a design.

Two floors come out, because the forms do not round alike. BLAS adds a
product's terms one after another, so an output's rounding error grows with
the length of the chain it is summed in. The per-tap forms sum chains of
``C`` (forward) or ``O`` (dgrad) terms and then add ``K`` partial sums; the
per-item wgrad sums chains of ``L`` and then adds ``N``. Stacking lengthens
the forward's and dgrad's chains to ``K C``, folding the wgrad's to
``N S``. On the dense ``K = 5`` forward, float32 against a float64 sum, the
per-tap form erred by at most 1.66 units of rounding times the terms'
magnitude (root mean square 0.21), the stacked one by 4.26 (0.44), PyTorch
by 5.29 (0.47). The *accurate floor* takes the cheapest of the forms that
keep the kernels' accuracy (per tap, per item), the *any-accuracy floor* the
cheapest of all; the *accurate arithmetic* is the accurate floor without its
copies (the products, and the additions no NumPy product can do for it).

Per shape it prints the pieces and the formulations' sums (ms), then a
table: both floors and uscale_ref's own forward + backward, timed in the
same rounds, each as a share of the 2048-square float32 rate (the median of
samples taken between the shapes, which ``uscale-ref bench`` divides by
too); with ``--compare`` also the bench's ratio to PyTorch (each side in its
own process) and that ratio scaled by floor / ours: where uscale_ref would
stand at each floor.

    python benchmarks/numpy_floor.py [--compare] [--rounds 3] [--repeats 9] [--only TEXT]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from uscale_ref.tools.benchmark import (
    DTYPES,
    SHAPES,
    Shape,
    make_arrays,
    matmul_gflops,
    ours,
    run_separate,
)

Pieces = dict[str, Callable[[], object]]


def _draw(rng: np.random.Generator, dtype: Any, *shape: int) -> np.ndarray:
    a = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


@dataclass
class Correlation:
    """A unit-stride correlation's pieces and arrays.

    ``result[n, r, l] = sum_{k, q} matrices[k][r, q] padded[n, q, l + k d]``
    (``padded``: ``data`` with ``d (K - 1) / 2`` zeros on each side). Both
    formulations end in ``result``, so a test can check them.
    """

    data: np.ndarray
    matrices: list[np.ndarray]
    result: np.ndarray
    pieces: Pieces


def correlation(
    rows: int, inner: int, shape: Shape, length: int, rng: np.random.Generator
) -> Correlation:
    """A unit-stride correlation of ``(N, inner, length)`` by K ``(rows, inner)`` taps."""
    dtype, taps, dilation, batch = np.dtype(DTYPES[shape.dtype]), shape.K, shape.dilation, shape.N
    reach = dilation * (taps - 1)
    segment = length + reach  # an item's padded stretch
    columns = batch * segment - reach
    data = _draw(rng, dtype, batch, inner, length)
    matrices = [_draw(rng, dtype, rows, inner) for _ in range(taps)]
    side_by_side = np.concatenate(matrices, axis=1)
    folded = np.zeros((inner, batch, segment), dtype)
    flat = folded.reshape(inner, batch * segment)
    products = [np.empty((rows, columns), dtype) for _ in range(taps)]
    stacked = np.empty((inner * taps, columns), dtype)
    summed = np.zeros((rows, batch * segment), dtype)  # both formulations end here
    result = np.empty((batch, rows, length), dtype)
    head = reach // 2

    def fold() -> None:
        np.copyto(folded[:, :, head : head + length], data.transpose(1, 0, 2))

    def unfold() -> None:
        np.copyto(result, summed.reshape(rows, batch, segment)[:, :, :length].transpose(1, 0, 2))

    def tap_products() -> None:
        for k, matrix in enumerate(matrices):
            np.matmul(matrix, flat[:, k * dilation : k * dilation + columns], out=products[k])

    def adding() -> None:
        if taps == 1:
            np.copyto(summed[:, :columns], products[0])
        else:
            np.add(products[0], products[1], out=summed[:, :columns])
        for product in products[2:]:
            np.add(summed[:, :columns], product, out=summed[:, :columns])

    def stack() -> None:
        for k in range(taps):
            shifted = flat[:, k * dilation : k * dilation + columns]
            np.copyto(stacked[k * inner : (k + 1) * inner], shifted)

    def one_product() -> None:
        np.matmul(side_by_side, stacked, out=summed[:, :columns])

    pieces = {
        "fold": fold,
        "unfold": unfold,
        "taps": tap_products,
        "adding": adding,
        "stack": stack,
        "one product": one_product,
    }
    return Correlation(data, matrices, result, pieces)


@dataclass
class WeightGradient:
    """The unit-stride wgrad's pieces and arrays.

    ``result[k, o, c] = sum_{n, l} gradient[n, o, l] padded[n, c, l + k d]``
    (no conjugate: a floor leaves that copy out). ``per item`` and
    ``folded taps`` write ``result``; ``one product`` writes ``stacked``,
    ``stacked[o, k C + c]`` being the same sum.
    """

    gradient: np.ndarray
    padded: np.ndarray
    result: np.ndarray
    stacked: np.ndarray
    pieces: Pieces


def weight_gradient(shape: Shape, rng: np.random.Generator) -> WeightGradient:
    """The pieces of the unit-stride wgrad's three formulations."""
    dtype, taps, dilation, batch = np.dtype(DTYPES[shape.dtype]), shape.K, shape.dilation, shape.N
    channels, outs, length = shape.C, shape.O, shape.out_length()
    reach = dilation * (taps - 1)
    segment = length + reach
    columns = batch * segment - reach
    gradient = _draw(rng, dtype, batch, outs, length)
    padded = _draw(rng, dtype, batch, channels, segment)
    per_item = np.empty((batch, outs, channels), dtype)
    sums = np.empty((taps, outs, channels), dtype)
    # Folded, each item's gradient is followed by zeros where it would meet the next item's input.
    folded_gradient = np.zeros((outs, batch, segment), dtype)
    folded_input = np.empty((channels, batch, segment), dtype)
    flat_input = folded_input.reshape(channels, batch * segment)
    flat_gradient = folded_gradient.reshape(outs, batch * segment)[:, :columns]
    stacked = np.empty((channels * taps, columns), dtype)
    whole = np.empty((outs, channels * taps), dtype)

    def item_products() -> None:
        for k in range(taps):
            view = padded[:, :, k * dilation : k * dilation + length].transpose(0, 2, 1)
            np.matmul(gradient, view, out=per_item)
            np.sum(per_item, axis=0, out=sums[k])

    def fold_both() -> None:
        np.copyto(folded_gradient[:, :, :length], gradient.transpose(1, 0, 2))
        np.copyto(folded_input, padded.transpose(1, 0, 2))

    def folded_products() -> None:
        for k in range(taps):
            shifted = flat_input[:, k * dilation : k * dilation + columns]
            np.matmul(flat_gradient, shifted.T, out=sums[k])

    def stack() -> None:
        for k in range(taps):
            shifted = flat_input[:, k * dilation : k * dilation + columns]
            np.copyto(stacked[k * channels : (k + 1) * channels], shifted)

    def one_product() -> None:
        np.matmul(flat_gradient, stacked.T, out=whole)

    pieces = {
        "per item": item_products,
        "fold both": fold_both,
        "folded taps": folded_products,
        "stack": stack,
        "one product": one_product,
    }
    return WeightGradient(gradient, padded, sums, whole, pieces)


# Each formulation: its pieces in order, and whether every output stays a sum of chains no
# longer than the kernels' (C or O terms per product for the forward and dgrad, L per item for
# wgrad): BLAS adds a product's terms one after another, so a longer chain rounds more.
FORMULATIONS = {
    "forward": {
        "per tap": (("fold", "taps", "adding", "unfold"), True),
        "stacked": (("fold", "stack", "one product", "unfold"), False),
    },
    "dgrad": {
        "per tap": (("fold", "taps", "adding", "unfold"), True),
        "stacked": (("fold", "stack", "one product", "unfold"), False),
    },
    "wgrad": {
        "per item": (("per item",), True),
        "folded": (("fold both", "folded taps"), False),
        "stacked": (("fold both", "stack", "one product"), False),
    },
}


# The pieces that do the arithmetic (the rest are copies between layouts).
ARITHMETIC = ("taps", "adding", "one product", "per item", "folded taps")


def time_pieces(pieces: dict[str, Pieces], rounds: int) -> dict[tuple[str, str], float]:
    """Median seconds of every piece: in each round each piece runs once untimed, then three times.

    The pieces take turns round by round, so a drift of the host's speed
    reaches them all alike; uscale_ref's own call is timed the same way.
    """
    calls = [((p, name), f) for p, named in pieces.items() for name, f in named.items()]
    times: dict[tuple[str, str], list[float]] = {key: [] for key, _ in calls}
    for _ in range(rounds):
        for key, call in calls:
            call()
            seconds = []
            for _ in range(3):
                start = time.perf_counter()
                call()
                seconds.append(time.perf_counter() - start)
            times[key].append(statistics.median(seconds))
    return {key: statistics.median(values) for key, values in times.items()}


def floor_of(shape: Shape, rounds: int, rng: np.random.Generator) -> dict[str, Any]:
    """Each pass's pieces and formulations, and the layer's floors (seconds) for ``shape``.

    ``"floor"``: the cheapest formulation of every pass; ``"accurate floor"``:
    the cheapest of those that keep the kernels' accuracy; ``"arithmetic"``:
    the products and additions of the latter alone; ``"ours"``: uscale_ref's
    forward + backward in the same rounds.
    """
    pieces = {
        "forward": correlation(shape.O, shape.C, shape, shape.out_length(), rng).pieces,
        "dgrad": correlation(shape.C, shape.O, shape, shape.L, rng).pieces,
        "wgrad": weight_gradient(shape, rng).pieces,
        "ours": _ours(shape),
    }
    seconds = time_pieces(pieces, rounds)
    passes = {}
    for name, formulations in FORMULATIONS.items():
        sums = {
            f: sum(seconds[name, piece] for piece in parts)
            for f, (parts, _) in formulations.items()
        }
        accurate = [f for f, (_, keeps) in formulations.items() if keeps]
        best = min(sums, key=sums.__getitem__)
        best_accurate = min(accurate, key=sums.__getitem__)
        passes[name] = {
            "pieces": {k[1]: v for k, v in seconds.items() if k[0] == name},
            "formulations": sums,
            "best": best,
            "best accurate": best_accurate,
        }
    unavoidable = sum(  # the accurate forms without their copies: products and additions
        seconds[name, piece]
        for name, info in passes.items()
        for piece in FORMULATIONS[name][info["best accurate"]][0]
        if piece in ARITHMETIC
    )
    return {
        "passes": passes,
        "arithmetic": unavoidable,
        "floor": sum(p["formulations"][p["best"]] for p in passes.values()),
        "accurate floor": sum(p["formulations"][p["best accurate"]] for p in passes.values()),
        "ours": seconds["ours", "fwd+bwd"],
    }


def _ours(shape: Shape) -> Pieces:
    """uscale_ref's forward + backward, timed in the same rounds as the pieces."""
    calls = ours(shape, make_arrays(shape, np.random.default_rng(0)))
    return {"fwd+bwd": calls["fwd+bwd"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", action="store_true", help="also time torch, as the bench does")
    parser.add_argument("--rounds", type=int, default=3, help="bench rounds for --compare")
    parser.add_argument(
        "--repeats",
        type=int,
        default=9,
        help="rounds of the pieces' timing (and timed calls per bench round)",
    )
    parser.add_argument("--only", default="", help="only shapes whose label contains this text")
    args = parser.parse_args(argv)

    shapes = [
        s for s in SHAPES
        if s.stride == 1 and s.groups == 1 and s.dtype in ("f32", "c64") and s.K > 1
        and args.only in s.label and s.note != "tiny"
    ]  # fmt: skip
    rows = {}
    if args.compare:
        measured, _ = run_separate(args.repeats, args.rounds, shapes)
        rows = {row["shape"]: row for row in measured}
    rng = np.random.default_rng(0)
    results, rates = [], []
    for shape in shapes:
        rates.append(statistics.median(matmul_gflops(5)))  # the host's speed drifts
        results.append(floor_of(shape, args.repeats, rng))
        print(f"{shape.label} (2048-square product {rates[-1]:.1f} GFLOP/s)")
        for name, info in results[-1]["passes"].items():
            pieces = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in info["pieces"].items())
            forms = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in info["formulations"].items())
            print(f"  {name} (ms): {pieces}; formulations: {forms}")
    rate = statistics.median(rates)
    table = []
    for shape, result in zip(shapes, results, strict=True):
        flops, here = 3 * shape.forward_flops(), result["ours"]
        cells = [shape.label]
        for floor in (result["arithmetic"], result["accurate floor"], result["floor"]):
            cells += [f"{floor * 1e3:.2f}", f"{flops / floor / 1e9 / rate:.0%}"]
        cells += [
            ", ".join(info["best"] for info in result["passes"].values()),
            f"{here * 1e3:.2f}",
            f"{flops / here / 1e9 / rate:.0%}",
            f"{here / result['accurate floor']:.2f}",
        ]
        if rows:  # the bench's ratio, moved by what reaching each floor would save
            ratio = rows[shape][("ours", "fwd+bwd")] / rows[shape][("torch", "fwd+bwd")]
            cells += [f"{ratio:.2f}"]
            cells += [f"{ratio * result[k] / here:.2f}" for k in ("accurate floor", "floor")]
        table.append("| " + " | ".join(cells) + " |")
    header = (
        "| shape | accurate arithmetic ms | % of matmul | accurate floor ms | % of matmul"
        " | any-accuracy floor ms | % of matmul"
        " | its forms (fwd, dgrad, wgrad) | ours ms (same rounds) | % of matmul"
        " | ours / accurate floor |"
    )
    if rows:
        header += " ours / torch (bench) | at the accurate floor | at the any-accuracy floor |"
    print(f"\nfloat32 2048-square product: median {rate:.1f} GFLOP/s over {len(rates)} samples")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
