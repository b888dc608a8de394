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

Exit status: 0 when every case upstream can run passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import torch
import unit_scaling.functional as U

from uscale_ref import golden

# Cases stored in a wider NumPy dtype run upstream in their own torch dtype.
LOW_PRECISION = {"bfloat16": torch.bfloat16, "complex32": torch.complex32}


def run_upstream(case: golden.Fixture) -> dict[str, np.ndarray]:
    low = LOW_PRECISION.get(case.dtype)
    tensors = {
        name: torch.tensor(value)
        .to(low or torch.tensor(value).dtype)
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
    return {name: t.detach().to(storage).resolve_conj().numpy() for name, t in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", help="glob on case ids")
    args = parser.parse_args()

    warnings.filterwarnings("ignore", "ComplexHalf support is experimental")
    counts = {"pass": 0, "FAIL": 0, "cannot run": 0}
    for case_id in golden.cases(filter=args.filter):
        case = golden.load(case_id)
        try:
            results = run_upstream(case)
        except TypeError as error:
            counts["cannot run"] += 1
            print(f"{case_id:<36} cannot run   upstream raised TypeError: {error}")
            continue
        reports = golden.compare(case, **results)
        worst = max(reports, key=lambda r: r.max_units / r.allowed_units)
        verdict = "pass" if all(r.passed for r in reports) else "FAIL"
        counts[verdict] += 1
        print(
            f"{case_id:<36} {verdict:<12} worst {worst.name} {worst.max_units:.3g} units "
            f"(allowed {worst.allowed_units:g})"
        )
    print(
        f"upstream vs goldens: {counts['pass']} passed, {counts['FAIL']} failed, "
        f"{counts['cannot run']} cannot run (string/tuple arguments)"
    )
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
