"""Command line: ``uscale-ref demo``, ``uscale-ref bench`` and ``uscale-ref golden ...``.

Also available as ``python -m uscale_ref``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, config
from .functional import conv1d, conv1d_backward
from .golden.suite import DTYPES as GOLDEN_DTYPES
from .golden.suite import FULL_DTYPES
from .scales import conv1d_scales


def _integer(least: int) -> Callable[[str], int]:
    """An argparse type: an int of at least ``least`` (a usage error, exit 2, otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


def _seconds() -> Callable[[str], float]:
    """An argparse type: a positive, finite number of seconds."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
        return value

    return parse


def _accumulate(text: str) -> str:
    """An argparse type: an accumulation the verdict knows (a usage error otherwise)."""
    from .tolerance.rule import check_accumulate

    try:
        return str(check_accumulate(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _padding(text: str) -> int | str:
    """An argparse type: 'same', 'valid' or a non-negative int."""
    if text in ("same", "valid"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative integer, 'same' or 'valid', got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _folder(text: str) -> str:
    """An argparse type: a non-empty path."""
    if not text:
        raise argparse.ArgumentTypeError("expected a folder, got an empty path")
    return text


def _demo(args: argparse.Namespace) -> int:
    """Run one unit-scaled conv1d forward and backward on unit-normal data and report it."""
    rng = np.random.default_rng(args.seed)
    dtype = np.dtype(args.dtype)
    groups = args.groups
    x = rng.standard_normal((args.batch, args.channels, args.length)).astype(dtype)
    w = rng.standard_normal((args.out_channels, args.channels // groups, args.kernel)).astype(dtype)
    b = rng.standard_normal(args.out_channels).astype(dtype)
    kwargs = {
        "stride": args.stride,
        "padding": args.padding,
        "dilation": args.dilation,
        "groups": groups,
        "constraint": None if args.constraint == "none" else args.constraint,
    }
    start = time.perf_counter()
    y = conv1d(x, w, b, **kwargs)
    g = rng.standard_normal(y.shape).astype(dtype)
    grads = conv1d_backward(g, x, w, b, **kwargs)
    elapsed = time.perf_counter() - start
    scales = conv1d_scales(x.shape, w.shape, **kwargs)

    print(f"unit-scaled conv1d, {dtype}: input {x.shape}, weight {w.shape} -> output {y.shape}")
    print(", ".join(f"{k}={v!r}" for k, v in kwargs.items()))
    print(f"{'tensor':<12}{'scale':>12}{'std':>10}")
    rows = [
        ("output", scales.output, y),
        ("grad_input", scales.grad_input, grads.grad_input),
        ("grad_weight", scales.grad_weight, grads.grad_weight),
        ("grad_bias", scales.grad_bias, grads.grad_bias),
    ]
    for name, scale, value in rows:
        print(f"{name:<12}{scale:>12.6g}{float(np.std(value)):>10.4f}")
    print(f"forward + backward took {elapsed * 1e3:.1f} ms")
    return 0


def _golden_generate(args: argparse.Namespace) -> int:
    from . import golden
    from .golden.caselist import parse_case, read_cases

    specs = [parse_case(text) for text in args.case or []]
    for path in args.cases or []:
        specs += read_cases(path)
    if args.compact is not None:
        if not specs:
            raise ValueError(
                "--compact applies to your own cases: give them with --case or --cases"
            )
        specs = [replace(spec, compact=args.compact) for spec in specs]
    if specs:
        if args.suite is not None:
            raise ValueError("--suite picks a built-in suite; with --case/--cases use --name")
        ids = golden.generate(
            args.out, suite=args.name, dtypes=args.dtype, pattern=args.filter, specs=specs,
            jobs=args.jobs, scheduler=args.scheduler, connect_timeout=args.connect_timeout,
            worker_timeout=args.worker_timeout,
        )  # fmt: skip
    else:
        if args.name is not None:
            raise ValueError("--name names your own cases: give them with --case or --cases")
        ids = golden.generate(
            args.out, suite=args.suite, dtypes=args.dtype, pattern=args.filter, jobs=args.jobs,
            scheduler=args.scheduler, connect_timeout=args.connect_timeout,
            worker_timeout=args.worker_timeout,
        )  # fmt: skip
    print(f"wrote {len(ids)} case(s) and manifest.json to {args.out}")
    return 0


def _golden_verify(args: argparse.Namespace) -> int:
    from . import golden
    from .verdict.directory import printable

    directory = args.directory or golden.default_dir()
    if not Path(directory).is_dir():
        raise ValueError(f"{directory}: not a directory")
    problems = golden.verify(directory)
    for problem in problems:
        print(printable(problem), file=sys.stderr)
    if problems:
        print(f"verify: {len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    print(f"verify: every case in {directory} matches its sha256 and regenerates byte for byte")
    return 0


def _golden_check(args: argparse.Namespace) -> int:
    from .verdict import check_directory, format_table
    from .verdict.diagnosis import NO_CAUSE
    from .verdict.directory import printable
    from .verdict.picture import picture_name, prepare_folder, require_matplotlib

    if args.golden is not None and not Path(args.golden).is_dir():
        raise ValueError(f"--golden {args.golden}: not a directory")
    if not Path(args.results).is_dir():
        raise ValueError(f"{args.results}: not a directory")
    folder = None
    if args.plot is not None:
        require_matplotlib("--plot")
        folder = prepare_folder(args.plot, "--plot")  # before any case is judged
    verdicts, problems = check_directory(
        args.results, args.golden, args.precision, accumulate=args.accumulate,
        skip=args.skip, reference=True, partial=args.partial,
        whole_reference=args.plot is not None, algorithm=args.algorithm,
        rounding=args.rounding,
    )  # fmt: skip
    if verdicts:
        print(format_table(verdicts))
    for problem in problems:
        print(f"error: {printable(problem)}", file=sys.stderr)
    causes = {}
    for verdict in verdicts:
        if not verdict.passed:
            causes[verdict.case_id] = verdict.cause or NO_CAUSE
            print(verdict.describe())
            print(f"  likely cause: {causes[verdict.case_id]}")
        if folder is not None:
            try:
                picture = verdict.plot(folder / picture_name(verdict.case_id))
            except OSError as error:
                raise ValueError(f"--plot {folder}: {error.strerror or error}") from None
            if not verdict.passed:
                print(f"  picture: {picture}")
    known = {cause for cause in causes.values() if NO_CAUSE not in cause}
    if len(causes) > 1 and len(known) == 1 and len(known) == len(set(causes.values())):
        print(f"every failing case is explained by one mistake: {known.pop()}")
    arrays = [report for verdict in verdicts for report in verdict.arrays]
    failed = sum(not report.passed for report in arrays)
    if args.plot is not None and verdicts:
        print(f"pictures of {len(verdicts)} case(s) in {args.plot}")
    print(f"check: {len(arrays) - failed} passed, {failed} failed, {len(problems)} problem(s)")
    return 1 if failed or problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uscale-ref", description="Reference unit-scaled conv1d (uscale_ref)."
    )
    parser.add_argument("--version", action="version", version=f"uscale-ref {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="forward and backward on unit-normal data; prints scales and stds",
        description="Defaults are upstream's own statistical test shape.",
    )
    positive, natural = _integer(1), _integer(0)
    demo.add_argument("--batch", type=positive, default=64)
    demo.add_argument("--channels", type=positive, default=192)
    demo.add_argument("--out-channels", type=positive, default=320)
    demo.add_argument("--kernel", type=positive, default=11)
    demo.add_argument("--length", type=positive, default=448)
    demo.add_argument("--stride", type=positive, default=1)
    demo.add_argument("--padding", type=_padding, default=0, help="an int, 'valid' or 'same'")
    demo.add_argument("--dilation", type=positive, default=1)
    demo.add_argument("--groups", type=positive, default=1)
    demo.add_argument(
        "--constraint",
        default="to_output_scale",
        choices=["none", "gmean", "hmean", "amean", "to_output_scale", "to_grad_input_scale"],
    )
    demo.add_argument(
        "--dtype",
        default="float32",
        choices=list(FULL_DTYPES),
    )
    demo.add_argument("--seed", type=natural, default=0)
    demo.set_defaults(handler=_demo)

    bench = commands.add_parser(
        "bench", help="time conv1d forward and backward against upstream + torch (if installed)"
    )
    from .tools.benchmark import add_arguments, run_from_arguments

    add_arguments(bench)
    bench.set_defaults(handler=run_from_arguments)

    golden = commands.add_parser("golden", help="golden fixtures: generate, verify, check")
    golden_commands = golden.add_subparsers(dest="golden_command", required=True)
    generate = golden_commands.add_parser(
        "generate", help="write fixtures and a manifest (byte for byte reproducible)"
    )
    generate.add_argument("--out", required=True, type=_folder, help="output folder")
    generate.add_argument(
        "--suite", choices=["standard", "large"], help="a built-in suite (default: standard)"
    )
    generate.add_argument(
        "--case",
        action="append",
        metavar="KEY=VALUE,...",
        help="your own case, e.g. 'dtype=float32,N=8,C=256,L=4096,O=256,K=9,padding=same' "
        "(repeatable; keys: dtype N C L O K stride padding dilation groups bias constraint "
        "scale_power batched fp8 compact)",
    )
    generate.add_argument(
        "--cases", action="append", metavar="FILE", help="your own cases from a .json or .toml file"
    )
    generate.add_argument(
        "--name", help="the suite name of your own cases (default: custom)", type=_folder
    )
    generate.add_argument(
        "--dtype",
        action="append",
        choices=list(GOLDEN_DTYPES),
        help="only this dtype (repeatable)",
    )
    generate.add_argument("--filter", help="only case ids matching this glob, e.g. 'c128_*same*'")
    generate.add_argument(
        "--jobs",
        type=_integer(1),
        default=os.cpu_count() or 1,
        metavar="N",
        help="cases built at once, each in a process of its own (default: the cores, "
        f"{os.cpu_count() or 1} here); the bytes are the same as one after another",
    )
    generate.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="build the cases on the workers of this dask.distributed scheduler "
        "(pip install 'uscale-ref[distributed]'); this process writes the files",
    )
    seconds = _seconds()
    generate.add_argument(
        "--connect-timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="with --scheduler: how long to wait for it to answer (default: 10)",
    )
    generate.add_argument(
        "--worker-timeout",
        type=seconds,
        default=30.0,
        metavar="SECONDS",
        help="with --scheduler: how long to wait for its first worker (default: 30; the "
        "wait is announced)",
    )
    generate.add_argument(
        "--compact",
        type=_integer(1),
        metavar="N",
        help="compact fixtures of your own cases: no inputs (drawn from their seeds when "
        "read) and each result's expected values at N positions: the tile edges, borders "
        "and corners, the rest drawn",
    )
    generate.set_defaults(handler=_golden_generate)
    verify = golden_commands.add_parser(
        "verify", help="check sha256 sums and regenerate every case; non-zero exit on a difference"
    )
    verify.add_argument("directory", nargs="?", help="golden folder (default: the committed one)")
    verify.set_defaults(handler=_golden_verify)
    check = golden_commands.add_parser(
        "check", help="judge another implementation's results (<case_id>.npz files)"
    )
    check.add_argument("results", help="folder of <case_id>.npz holding output/grad_* arrays")
    check.add_argument("--golden", help="golden folder (default: the committed one)")
    check.add_argument(
        "--precision",
        default="exact",
        choices=["exact", "tf32"],
        help="tf32: the float32/complex64 kernel rounds its multiplicands to TF32",
    )
    check.add_argument(
        "--accumulate",
        type=_accumulate,
        metavar="FORMAT",
        help="what your kernel accumulates in, when not the default (float32 for float16, "
        "bfloat16 and complex32 cases, else the case's dtype): float16, bfloat16, float32, "
        "float64, 'p bits' (an accumulator of p significant bits) or 'p bits every m' "
        "(its partial sums added into float32 every m products), e.g. '14 bits every 128'",
    )
    check.add_argument(
        "--skip",
        action="append",
        choices=["bound", "precision", "bias"],
        help="switch a check off (repeatable)",
    )
    check.add_argument(
        "--plot",
        metavar="DIR",
        type=_folder,
        help="draw each case's precision map and error histogram to DIR/<case_id>.png "
        "(needs matplotlib)",
    )
    check.add_argument(
        "--algorithm",
        default="direct",
        choices=["direct", "fft", "winograd"],
        help="fft: the kernel convolves by transforms; the bound allows an FFT's error, "
        "bounded by the rows' norms; winograd: by minimal filtering on tiles, its error "
        "bounded by each tile's inputs' norms",
    )
    check.add_argument(
        "--rounding",
        default="nearest",
        choices=["nearest", "stochastic"],
        help="stochastic: your kernel rounds its results up or down at random (unbiased); "
        "each may miss by a unit in the last place, and no bias at all is allowed",
    )
    check.add_argument(
        "--partial",
        action="store_true",
        help="check only the cases with results (by default a golden case without results "
        "is a failure)",
    )
    check.set_defaults(handler=_golden_check)
    _survey_parser(commands)
    return parser


def _survey_parser(commands: Any) -> None:
    from .survey.adapters import ADAPTERS
    from .survey.run import DTYPES, PLANS

    survey = commands.add_parser(
        "survey",
        help="judge every installed framework's conv1d (PyTorch, JAX, TensorFlow, "
        "onnxruntime, tinygrad) on this machine, in one table",
    )
    survey.add_argument(
        "--frameworks",
        nargs="+",
        choices=list(ADAPTERS),
        metavar="NAME",
        help=f"only these adapters (default: all): {', '.join(ADAPTERS)}",
    )
    survey.add_argument(
        "--dtypes",
        nargs="+",
        choices=list(DTYPES),
        metavar="DTYPE",
        help=f"only these dtypes (default: {' '.join(DTYPES)})",
    )
    survey.add_argument(
        "--shapes",
        choices=list(PLANS),
        default="small",
        help="small: the committed cases (minutes); production: dense, depthwise, strided "
        "and dilated layers at production size",
    )
    survey.add_argument(
        "--golden",
        metavar="DIR",
        type=_folder,
        help="small: the cases of this folder instead; production: build the fixtures "
        "into this folder once and reuse them",
    )
    survey.add_argument(
        "--jobs",
        type=_integer(1),
        default=1,
        metavar="N",
        help="production fixtures built at once, each in a process",
    )
    survey.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="build the production fixtures on a dask.distributed scheduler",
    )
    survey.add_argument(
        "--json",
        metavar="FILE",
        default="uscale-ref-survey.json",
        help="write the table as JSON (default: uscale-ref-survey.json)",
    )
    survey.add_argument(
        "--plot", metavar="FILE", help="draw the table to this PNG file (needs matplotlib)"
    )
    survey.set_defaults(handler=_survey)


def _survey(args: argparse.Namespace) -> int:
    from .survey import draw, survey

    if args.plot is not None:
        from .verdict.picture import require_matplotlib

        require_matplotlib("--plot")
    result = survey(args.frameworks, args.dtypes, args.shapes, args.golden, args.jobs,
                    args.scheduler, progress=lambda line: print(line, file=sys.stderr,
                                                                 flush=True))  # fmt: skip
    print(result.table())
    Path(args.json).write_text(result.to_json() + "\n")
    print(f"\nwritten: {args.json}")
    if args.plot is not None:
        print(f"drawn: {draw(result, args.plot)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    problem = config.environment_problem()
    if problem:
        parser.error(problem)
    args = parser.parse_args(argv)
    if args.command == "demo" and (args.channels % args.groups or args.out_channels % args.groups):
        parser.error(
            f"argument --groups: {args.groups} must divide --channels ({args.channels}) "
            f"and --out-channels ({args.out_channels})"
        )
    from .golden.errors import SweepError

    try:
        return int(args.handler(args))
    except (ValueError, TypeError, OSError) as error:
        print(f"uscale-ref: error: {error}", file=sys.stderr)
        return 2
    except SweepError as error:  # the machine or cluster, not the usage: nothing was written
        print(f"uscale-ref: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        # generate leaves its folder as it was; say so in one line, no traceback.
        reason = str(interrupt) or "interrupted (Ctrl-C)"
        print(f"\nuscale-ref: {reason}; nothing was changed", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
