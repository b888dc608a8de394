"""uscale_ref on CuPy held to its own golden cases and drawn problems, on a GPU.

The test suite runs the CuPy backend through the same parametrized tests as
NumPy; this script adds the end-to-end view a kernel author gets from
:func:`uscale_ref.testing.assert_conv1d`: every committed golden case (float16
to complex128) and ``--drawn`` random problems, run on the GPU with arrays
that never leave it until the comparison, and the error in units of rounding
per dtype and array. It also checks that every result is a CuPy array on the
device its inputs were on.

    python benchmarks/cupy_conformance.py [--drawn 50]

Exit status 0 when every case passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

import uscale_ref
from uscale_ref.testing import assert_conv1d


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drawn", type=int, default=50, help="random problems after the goldens")
    args = parser.parse_args()
    import cupy

    device = cupy.cuda.Device()
    wrong_place: list[str] = []

    def on_gpu(name: str, value: Any) -> Any:
        if value is not None and not (
            isinstance(value, cupy.ndarray) and value.device.id == device.id
        ):
            wrong_place.append(f"{name}: {type(value).__name__}")
        return value

    def forward(*args: Any, **kwargs: Any) -> Any:
        return on_gpu("output", uscale_ref.conv1d(*args, **kwargs))

    def backward(*args: Any, **kwargs: Any) -> Any:
        grads = uscale_ref.conv1d_backward(*args, **kwargs)
        for name, value in zip(("grad_input", "grad_weight", "grad_bias"), grads, strict=True):
            on_gpu(name, value)
        return grads

    def to_array(array: np.ndarray, dtype: str) -> Any:
        return cupy.asarray(array)

    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    print(f"CuPy {cupy.__version__} on {props['name'].decode()}")
    try:
        report = assert_conv1d(forward, backward, to_array=to_array, drawn=args.drawn)
    except AssertionError as failure:
        print(failure)
        return 1
    print(report)
    if wrong_place:
        print(f"{len(wrong_place)} results not CuPy arrays on device {device.id}:", wrong_place[:5])
        return 1
    print("every result a CuPy array on the inputs' device")
    return 0


if __name__ == "__main__":
    sys.exit(main())
