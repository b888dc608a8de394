"""uscale_ref on a GPU array library held to its golden cases and drawn problems.

The test suite runs the CuPy backend through the same parametrized tests as
NumPy (its torch and JAX backends use the CPU); this script adds the
end-to-end view a kernel author gets from
:func:`uscale_ref.testing.assert_conv1d`, on the GPU: every committed golden
case and ``--drawn`` random problems, with arrays that stay on the device
until the comparison, and the error in units of rounding per dtype and array.
It also checks that every result lives on its inputs' device.

    python benchmarks/gpu_conformance.py [--library cupy|torch|jax] [--drawn 50]
        [--filter 'f32_*'] [--dtypes float32,complex64]

``--library torch`` puts the arrays on ``cuda`` (``--device`` to change it),
``jax`` on its first GPU, with JAX's 64-bit mode switched on (without it
JAX would make the float64 and complex128 cases' arrays 32-bit); JAX
compiles each new shape, so the whole set takes it a few minutes (``--dtypes``
and ``--filter`` pick a subset).
Exit status 0 when every case passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import uscale_ref
from uscale_ref._backend import device_of, on_accelerator
from uscale_ref.testing import assert_conv1d
from uscale_ref.testing.runner import NUMPY_DTYPES


def converter(library: str, device: str) -> tuple[Callable[[np.ndarray, str], Any], str]:
    """``to_array`` for :func:`assert_conv1d` on ``library``, and a line naming the device."""
    if library == "cupy":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        return (
            lambda a, d: cupy.asarray(a)
        ), f"CuPy {cupy.__version__} on {props['name'].decode()}"
    if library == "torch":
        import torch

        name = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
        return (lambda a, d: torch.tensor(a, device=device)), f"torch {torch.__version__} on {name}"
    import jax

    jax.config.update("jax_enable_x64", True)
    gpu = jax.devices("gpu")[0] if device.startswith("cuda") else jax.devices("cpu")[0]
    return (lambda a, d: jax.device_put(a, gpu)), f"JAX {jax.__version__} on {gpu}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", choices=["cupy", "torch", "jax"], default="cupy")
    parser.add_argument("--device", default="cuda", help="torch's device (default cuda)")
    parser.add_argument("--drawn", type=int, default=50, help="random problems after the goldens")
    parser.add_argument("--filter", help="a glob on golden case ids")
    parser.add_argument("--dtypes", help="comma-separated, e.g. float32,complex64")
    args = parser.parse_args()
    to_array, where = converter(args.library, args.device)
    dtypes = args.dtypes.split(",") if args.dtypes else list(NUMPY_DTYPES)
    reference = to_array(np.zeros(1, np.float32), "float32")
    misplaced: list[str] = []

    def placed(name: str, value: Any) -> Any:
        if value is not None and device_of(value) != device_of(reference):
            misplaced.append(f"{name}: {type(value).__name__} on {device_of(value)}")
        return value

    def forward(*arrays: Any, **kwargs: Any) -> Any:
        return placed("output", uscale_ref.conv1d(*arrays, **kwargs))

    def backward(*arrays: Any, **kwargs: Any) -> Any:
        grads = uscale_ref.conv1d_backward(*arrays, **kwargs)
        for name, value in zip(("grad_input", "grad_weight", "grad_bias"), grads, strict=True):
            placed(name, value)
        return grads

    print(where, "(on a GPU)" if on_accelerator(reference) else "(host)")
    try:
        report = assert_conv1d(
            forward, backward, to_array=to_array, drawn=args.drawn, filter=args.filter,
            dtypes=dtypes,
        )  # fmt: skip
    except AssertionError as failure:
        print(failure)
        return 1
    print(report)
    if misplaced:
        print(f"{len(misplaced)} results off the inputs' device:", misplaced[:5])
        return 1
    print(f"every result on the inputs' device ({device_of(reference)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
