"""Independent oracles: the definitions written as plain loops, and scipy.signal.

Nothing here imports uscale_ref's arithmetic. Every oracle works in float64 or
complex128 NumPy on small arrays and is slow on purpose: one line per index of
the formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal


@dataclass(frozen=True)
class Geometry:
    """Resolved integer arguments (computed here, not by uscale_ref)."""

    stride: int
    pad_left: int
    pad_right: int
    dilation: int
    groups: int

    @classmethod
    def resolve(cls, kernel_size, stride=1, padding=0, dilation=1, groups=1):
        unwrap = lambda v: v[0] if isinstance(v, tuple) else v  # noqa: E731
        stride, padding, dilation = unwrap(stride), unwrap(padding), unwrap(dilation)
        if padding == "valid":
            left = right = 0
        elif padding == "same":
            total = dilation * (kernel_size - 1)
            left, right = total // 2, total - total // 2
        else:
            left = right = padding
        return cls(stride, left, right, dilation, groups)

    def out_length(self, in_length, kernel_size):
        reach = self.dilation * (kernel_size - 1) + 1
        return (in_length + self.pad_left + self.pad_right - reach) // self.stride + 1


def widen(a):
    """float16/32/64 -> float64, complex64/128 -> complex128 (exactly)."""
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def loop_forward(x, w, b, geo: Geometry):
    """y[n,o,l] = b[o] + sum_{i,k} w[o,i,k] * x[n, g*Cg+i, l*s + k*d - p_l] (zero outside).

    Summed over i and k in that order, starting from the bias, so that
    NaN and inf spread as they do in any order of the same products.
    """
    x, w = widen(x), widen(w)
    n_batch, _, length = x.shape
    n_out, per_group_in, kernel = w.shape
    per_group_out = n_out // geo.groups
    out_length = geo.out_length(length, kernel)
    y = np.zeros((n_batch, n_out, out_length), dtype=np.result_type(x, w))
    for n in range(n_batch):
        for o in range(n_out):
            g = o // per_group_out
            for l in range(out_length):
                total = 0.0 if b is None else widen(b)[o]
                for i in range(per_group_in):
                    for k in range(kernel):
                        t = l * geo.stride + k * geo.dilation - geo.pad_left
                        # A padding position holds a zero that is multiplied like any
                        # value (0 * inf is NaN), as PyTorch's forward does.
                        value = x[n, g * per_group_in + i, t] if 0 <= t < length else 0.0
                        total += w[o, i, k] * value
                y[n, o, l] = total
    return y


def loop_input_grad(grad_output, w, in_length, geo: Geometry):
    """grad_x[n,c,t] = sum over (o,k,l) with l*s + k*d - p_l = t of conj(w[o,i,k]) g[n,o,l].

    Only the pairs (k, l) that exist are summed: nothing is multiplied by a
    padding zero (as PyTorch's dgrad).
    """
    grad_output, w = widen(grad_output), widen(w)
    n_batch, n_out, out_length = grad_output.shape
    _, per_group_in, kernel = w.shape
    per_group_out = n_out // geo.groups
    grad_x = np.zeros(
        (n_batch, per_group_in * geo.groups, in_length), dtype=np.result_type(grad_output, w)
    )
    for n in range(n_batch):
        for o in range(n_out):
            g = o // per_group_out
            for l in range(out_length):
                for i in range(per_group_in):
                    for k in range(kernel):
                        t = l * geo.stride + k * geo.dilation - geo.pad_left
                        if 0 <= t < in_length:
                            grad_x[n, g * per_group_in + i, t] += (
                                np.conj(w[o, i, k]) * grad_output[n, o, l]
                            )
    return grad_x


def loop_weight_grad(grad_output, x, kernel, geo: Geometry):
    """grad_w[o,i,k] = sum_{n,l} g[n,o,l] * conj(x[n, g*Cg+i, l*s + k*d - p_l])."""
    grad_output, x = widen(grad_output), widen(x)
    n_batch, n_out, out_length = grad_output.shape
    _, n_in, length = x.shape
    per_group_in, per_group_out = n_in // geo.groups, n_out // geo.groups
    grad_w = np.zeros((n_out, per_group_in, kernel), dtype=np.result_type(grad_output, x))
    for o in range(n_out):
        g = o // per_group_out
        for i in range(per_group_in):
            for k in range(kernel):
                for n in range(n_batch):
                    for l in range(out_length):
                        t = l * geo.stride + k * geo.dilation - geo.pad_left
                        value = x[n, g * per_group_in + i, t] if 0 <= t < length else 0.0
                        grad_w[o, i, k] += grad_output[n, o, l] * np.conj(value)
    return grad_w


def scipy_forward(x, w, geo: Geometry):
    """The unscaled, bias-free forward pass from scipy.signal.correlate, channel pair by pair.

    scipy's ``correlate(a, v)`` sums ``a[m + j] * conj(v[j])``: the kernel is
    conjugated, so we pass ``conj(w)`` to undo that. Dilation is a kernel
    with ``d - 1`` zeros between taps; stride keeps every ``s``-th output.
    """
    x, w = widen(x), widen(w)
    n_batch = x.shape[0]
    n_out, per_group_in, kernel = w.shape
    per_group_out = n_out // geo.groups
    x_pad = np.pad(x, ((0, 0), (0, 0), (geo.pad_left, geo.pad_right)))
    dilated = np.zeros((n_out, per_group_in, geo.dilation * (kernel - 1) + 1), dtype=w.dtype)
    dilated[..., :: geo.dilation] = w
    rows = []
    for n in range(n_batch):
        channels = []
        for o in range(n_out):
            g = o // per_group_out
            full = sum(
                scipy.signal.correlate(
                    x_pad[n, g * per_group_in + i], np.conj(dilated[o, i]), mode="valid"
                )
                for i in range(per_group_in)
            )
            channels.append(full[:: geo.stride])
        rows.append(channels)
    return np.array(rows)


def random_array(rng, shape, dtype):
    """Unit-variance normal samples of ``dtype`` (complex: E|z|^2 = 1)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        parts = rng.standard_normal((2, *shape)) / np.sqrt(2)
        return (parts[0] + 1j * parts[1]).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)
