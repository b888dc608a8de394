"""A conv1d written without uscale_ref (NumPy, per-tap einsum), with switches for classic mistakes.

It is the "correct independent implementation" the conformance runner must
pass, and, with one mistake switched on, the broken kernels whose cause the
diagnosis must name.
"""

from __future__ import annotations

import math

import numpy as np


def _ints(stride, padding, dilation, kernel):
    one = lambda v: v[0] if isinstance(v, (tuple, list)) else v  # noqa: E731
    stride, dilation = one(stride), one(dilation)
    padding = one(padding)
    if padding == "valid":
        return stride, 0, 0, dilation
    if padding == "same":
        total = dilation * (kernel - 1)
        return stride, total // 2, total - total // 2, dilation
    return stride, padding, padding, dilation


def _scales(x, w, stride, groups, out_length, constraint, powers):
    fan_out, fan_in, kernel = w.shape
    batch = out_length * (x.shape[0] if x.ndim == 3 else 1)
    output = (fan_in * kernel) ** -powers[0]
    grad_input = (stride * groups / (fan_out * kernel)) ** powers[1]
    grad_weight = batch ** -powers[2]
    choose = {
        None: None, "": None,
        "gmean": math.sqrt(output * grad_input),
        "hmean": 2 / (1 / output + 1 / grad_input),
        "amean": (output + grad_input) / 2,
        "to_output_scale": output,
        "to_grad_input_scale": grad_input,
    }[constraint]  # fmt: skip
    if choose is not None:
        output = grad_input = choose
    return output, grad_input, grad_weight


class Kernel:
    """forward/backward with upstream's signature; ``mistake`` names one classic error."""

    def __init__(self, mistake=None):
        self.mistake = mistake

    def _setup(self, x, w, stride, padding, dilation):
        s, left, right, d = _ints(stride, padding, dilation, w.shape[-1])
        if self.mistake == "padding side":
            left, right = right, left
        return s, left, right, d

    def _wide(self, a):
        if a is None:
            return None
        return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)

    def forward(self, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                constraint="to_output_scale", scale_power=(0.5, 0.5, 0.5)):  # fmt: skip
        dtype = input.dtype
        x = self._wide(input if input.ndim == 3 else input[None])
        w, b = self._wide(weight), self._wide(bias)
        if self.mistake == "flipped kernel":
            w = w[..., ::-1]
        if self.mistake == "forward conjugate":
            w = np.conj(w)
        s, left, right, d = self._setup(x, w, stride, padding, dilation)
        x_pad = np.pad(x, ((0, 0), (0, 0), (left, right)))
        out, c_g, k = w.shape
        length = (x_pad.shape[-1] - d * (k - 1) - 1) // s + 1
        o_g = out // groups
        y = np.zeros((x.shape[0], out, length), dtype=np.result_type(x, w))
        for g in range(groups):
            channels = x_pad[:, g * c_g : (g + 1) * c_g]
            if self.mistake == "group order" and groups > 1:
                channels = x_pad[:, g::groups]
            for tap in range(k):
                taps = channels[..., tap * d : tap * d + (length - 1) * s + 1 : s]
                y[:, g * o_g : (g + 1) * o_g] += np.einsum(
                    "oc,ncl->nol", w[g * o_g : (g + 1) * o_g, :, tap], taps
                )
        scale = _scales(input, weight, s, groups, length, constraint, scale_power)[0]
        if self.mistake == "output scale twice":
            scale = scale * scale
        if self.mistake == "constraint":
            scale = _scales(input, weight, s, groups, length, "gmean", scale_power)[0]
        if b is not None:
            y = (
                scale * y + b[:, None]
                if self.mistake == "bias after scale"
                else scale * (y + b[:, None])
            )
        else:
            y = scale * y
        if self.mistake == "shift":
            y = np.roll(y, 1, axis=-1)
        y = y.astype(dtype)
        return y if input.ndim == 3 else y[0]

    def backward(self, grad_output, input, weight, bias=None, stride=1, padding=0, dilation=1,
                 groups=1, constraint="to_output_scale", scale_power=(0.5, 0.5, 0.5)):  # fmt: skip
        dtype = input.dtype
        x = self._wide(input if input.ndim == 3 else input[None])
        delta = self._wide(grad_output if grad_output.ndim == 3 else grad_output[None])
        w = self._wide(weight)
        s, left, right, d = self._setup(x, w, stride, padding, dilation)
        x_pad = np.pad(x, ((0, 0), (0, 0), (left, right)))
        out, c_g, k = w.shape
        length = delta.shape[-1]
        o_g = out // groups
        grad_pad = np.zeros(x_pad.shape, dtype=np.result_type(x, w, delta))
        grad_w = np.zeros(w.shape, dtype=grad_pad.dtype)
        conj_w = w if self.mistake == "dgrad conjugate" else np.conj(w)
        conj_x = x_pad if self.mistake == "wgrad conjugate" else np.conj(x_pad)
        if self.mistake == "swap":  # wgrad reads x_pad[l d + k s]: room for it on the right
            conj_x = np.pad(conj_x, ((0, 0), (0, 0), (0, (length - 1) * d + (k - 1) * s + 1)))
        for g in range(groups):
            rows = delta[:, g * o_g : (g + 1) * o_g]
            for tap in range(k):
                window = slice(tap * d, tap * d + (length - 1) * s + 1, s)
                read = window
                if self.mistake == "swap":
                    read = slice(tap * s, tap * s + (length - 1) * d + 1, d)
                grad_pad[:, g * c_g : (g + 1) * c_g, window] += np.einsum(
                    "oc,nol->ncl", conj_w[g * o_g : (g + 1) * o_g, :, tap], rows
                )
                grad_w[g * o_g : (g + 1) * o_g, :, tap] = np.einsum(
                    "nol,ncl->oc", rows, conj_x[:, g * c_g : (g + 1) * c_g, read]
                )
        _, grad_input_scale, grad_weight_scale = _scales(
            input, weight, s, groups, length, constraint, scale_power
        )
        grad_x = grad_pad[..., left : left + x.shape[-1]] * grad_input_scale
        grad_x = (grad_x if input.ndim == 3 else grad_x[0]).astype(dtype)
        grad_b = (
            None if bias is None else (delta.sum(axis=(0, 2)) * grad_weight_scale).astype(dtype)
        )
        if self.mistake == "grad_weight scale missing":
            grad_weight_scale = 1.0
        return grad_x, (grad_w * grad_weight_scale).astype(dtype), grad_b
