"""How many real products a complex convolution uses, seen from its rounding errors.

A complex multiply-add done with four real products rounds the imaginary
part ``xr wi + xi wr`` on its own scale. Gauss's three-product form computes
it as ``(xr + xi)(wr + wi) - xr wr - xi wi``: a quarter fewer products, but
when the real parts are large and the imaginary parts small the two big
terms cancel and their rounding error lands in the small imaginary part.

This script draws complex64 inputs whose imaginary parts are ``eps`` times
their real parts and reports the largest error of each part, relative to the
largest value of that part, for uscale_ref and (when installed) torch:

    python benchmarks/complex_products.py
"""

from __future__ import annotations

import numpy as np

import uscale_ref


def _inputs(eps: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)

    def draw(*shape: int) -> np.ndarray:
        z = rng.standard_normal(shape) + 1j * eps * rng.standard_normal(shape)
        return z.astype(np.complex64)

    return draw(2, 64, 256), draw(8, 64, 5)


def _relative_errors(result: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    def part(f: np.ndarray, e: np.ndarray) -> float:
        return float(np.max(np.abs(f - e)) / np.max(np.abs(e)))

    return part(result.real, exact.real), part(result.imag, exact.imag)


def main() -> None:
    eps = 1e-4
    x, w = _inputs(eps)
    exact = uscale_ref.correlate(x.astype(np.complex128), w.astype(np.complex128))
    rows = {"uscale_ref": uscale_ref.correlate(x, w)}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        out = torch.nn.functional.conv1d(torch.from_numpy(x), torch.from_numpy(w))
        rows[f"torch {torch.__version__}"] = out.numpy()
    print(f"complex64, imaginary parts {eps:g} x the real parts; error / largest |value|:")
    for name, result in rows.items():
        real, imag = _relative_errors(result.astype(np.complex128), exact)
        print(f"  {name:<22} real part {real:9.2e}   imaginary part {imag:9.2e}")


if __name__ == "__main__":
    main()
