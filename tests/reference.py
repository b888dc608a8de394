"""Exact expected results of the scaled op, built only from the oracles.

The scale formulas are written out again here from upstream's definition (as
docs/derivations.md states it, section "The four scales") rather than imported,
so that a mistake in uscale_ref.scales cannot hide itself.
"""

from __future__ import annotations

import math

import numpy as np
import oracles


def reference_scales(
    batch,
    out_length,
    fan_out,
    fan_in,
    kernel,
    stride,
    groups,
    constraint="to_output_scale",
    scale_power=(0.5, 0.5, 0.5),
):
    output = (fan_in * kernel) ** -scale_power[0]
    grad_input = (stride * groups / (fan_out * kernel)) ** scale_power[1]
    grad_weight = (out_length * (batch or 1)) ** -scale_power[2]
    pair = {
        None: (output, grad_input),
        "": (output, grad_input),
        "gmean": (math.sqrt(output * grad_input),) * 2,
        "hmean": (2 / (1 / output + 1 / grad_input),) * 2,
        "amean": ((output + grad_input) / 2,) * 2,
        "to_output_scale": (output, output),
        "to_grad_input_scale": (grad_input, grad_input),
    }[constraint]
    return (*pair, grad_weight, grad_weight)


def exact(
    x, w, b, g, geo: oracles.Geometry, constraint="to_output_scale", scale_power=(0.5, 0.5, 0.5)
):
    """Exact (float64/complex128) results and their error magnitudes.

    Returns a dict: name -> (exact value, magnitude, number of summed terms).
    """
    batched = x.ndim == 3
    if not batched:
        x, g = x[None], g[None]
    n_batch, _, length = x.shape
    n_out, per_group_in, kernel = w.shape
    out_length = g.shape[-1]
    s_out, s_in, s_w, s_b = reference_scales(
        n_batch if batched else None,
        out_length,
        n_out,
        per_group_in,
        kernel,
        geo.stride,
        geo.groups,
        constraint,
        scale_power,
    )
    abs_b = None if b is None else np.abs(oracles.widen(b))
    y = s_out * oracles.loop_forward(x, w, b, geo)
    y_mag = abs(s_out) * oracles.loop_forward(np.abs(x), np.abs(w), abs_b, geo).real
    gx = s_in * oracles.loop_input_grad(g, w, length, geo)
    gx_mag = s_in * oracles.loop_input_grad(np.abs(g), np.abs(w), length, geo).real
    gw = s_w * oracles.loop_weight_grad(g, x, kernel, geo)
    gw_mag = s_w * oracles.loop_weight_grad(np.abs(g), np.abs(x), kernel, geo).real
    unbatch = (lambda a: a) if batched else (lambda a: a[0])
    result = {
        "output": (unbatch(y), unbatch(y_mag), per_group_in * kernel + 1),
        "grad_input": (unbatch(gx), unbatch(gx_mag), (n_out // geo.groups) * kernel),
        "grad_weight": (gw, gw_mag, n_batch * out_length),
    }
    if b is not None:
        gb = s_b * oracles.widen(g).sum(axis=(0, 2))
        gb_mag = s_b * np.abs(oracles.widen(g)).sum(axis=(0, 2))
        result["grad_bias"] = (gb, gb_mag, n_batch * out_length)
    return result
