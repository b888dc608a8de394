"""Hold upstream ``unit_scaling.functional.conv1d`` + PyTorch autograd against the goldens.

A worked example of testing *another* implementation with uscale_ref's
fixtures. For every committed case it runs upstream exactly as a user would
(forward, then ``output.backward(grad_output)``), compares all four results
with ``uscale_ref.golden.compare`` and prints one line per case. Upstream
cannot run string or tuple padding, nor tuple stride/dilation (it raises
``TypeError``); those cases are reported as "cannot run" with upstream's own
error, never skipped silently.

    pip install -e ".[upstream]"
    python examples/upstream_against_goldens.py [--filter 'c128_*']
    python examples/upstream_against_goldens.py --device cuda [--no-tf32]

On a GPU, PyTorch runs float32 convolutions in TF32 unless told not to
(``torch.backends.cudnn.allow_tf32``), so there the float32 and complex64
cases are compared with ``precision="tf32"`` by default; ``--no-tf32``
switches TF32 off and holds them to the exact tolerance.

Exit status: 0 when every case upstream can run passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import torch
import unit_scaling.functional as U
from torch_arithmetic import taps_summed_in

from uscale_ref import golden

# Cases stored in a wider NumPy dtype run upstream in their own torch dtype.
LOW_PRECISION = {"bfloat16": torch.bfloat16, "complex32": torch.complex32}


def run_upstream(case: golden.Fixture, device: str = "cpu") -> dict[str, np.ndarray]:
    low = LOW_PRECISION.get(case.dtype)
    tensors = {
        name: torch.tensor(value)
        .to(device=device, dtype=low or torch.tensor(value).dtype)
        .requires_grad_(name != "grad_output")
        for name, value in case.inputs.items()
        if value is not None
    }
    output = U.conv1d(tensors["input"], tensors["weight"], tensors.get("bias"), **case.kwargs)
    output.backward(tensors["grad_output"])
    results = {
        "output": output,
        "grad_input": tensors["input"].grad,
        "grad_weight": tensors["weight"].grad,
    }
    if "bias" in tensors:
        results["grad_bias"] = tensors["bias"].grad
    storage = getattr(torch, case.storage_dtype)
    return {
        name: t.detach().to(storage).resolve_conj().cpu().numpy() for name, t in results.items()
    }


def precision_for(case: golden.Fixture, tf32: bool) -> str:
    """``"tf32"`` for the float32 and complex64 cases when TF32 may be on, else ``"exact"``."""
    return "tf32" if tf32 and case.dtype in ("float32", "complex64") else "exact"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", help="glob on case ids")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    parser.add_argument(
        "--no-tf32", action="store_true", help="on a GPU: switch TF32 off, exact tolerance"
    )
    args = parser.parse_args()
    tf32 = args.device.startswith("cuda") and not args.no_tf32
    if args.device.startswith("cuda"):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32

    warnings.filterwarnings("ignore", "ComplexHalf support is experimental")
    counts = {"pass": 0, "FAIL": 0, "cannot run": 0}
    for case_id in golden.cases(filter=args.filter):
        case = golden.load(case_id)
        try:
            results = run_upstream(case, args.device)
        except (TypeError, RuntimeError) as error:  # RuntimeError: no such kernel on a device
            counts["cannot run"] += 1
            message = str(error).splitlines()[0] if str(error) else ""
            print(f"{case_id:<36} cannot run   upstream raised {type(error).__name__}: {message}")
            continue
        # PyTorch's complex32 convolutions on the CPU keep their running sums in half
        # precision (their gradients fail the float32-accumulation verdict and pass this one),
        # and so do its float16 and bfloat16 ones on processors without native bfloat16
        # arithmetic, which add the kernel taps in the narrow format (torch_arithmetic.py).
        accumulate = "float16" if case.dtype == "complex32" else None
        if args.device == "cpu" and accumulate is None:
            accumulate = taps_summed_in(case.dtype)
        reports = golden.compare(case, precision_for(case, tf32), accumulate=accumulate, **results)
        worst = max(reports, key=lambda r: r.bound_ratio)
        least = min(reports, key=lambda r: r.precision.bits - r.precision.required)
        verdict = "pass" if all(r.passed for r in reports) else "FAIL"
        counts[verdict] += 1
        print(
            f"{case_id:<36} {verdict:<12} {worst.name} uses {worst.bound_ratio:.2g} of its "
            f"bound; least precise {least.name}: {least.precision.short()}"
        )
    print(
        f"upstream vs goldens: {counts['pass']} passed, {counts['FAIL']} failed, "
        f"{counts['cannot run']} cannot run (string/tuple arguments"
        f"{'' if args.device == 'cpu' else ', or no kernel on ' + args.device})"
    )
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
