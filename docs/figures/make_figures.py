"""Regenerate the figures of the documentation (needs matplotlib: pip install -e .[docs]).

    python docs/figures/make_figures.py

Writes, next to this script:

* ``scaling.png``: std of output, grad_input and grad_weight against the
  fan-in and the kernel length, for the plain (unscaled) convolution and for
  the unit-scaled one (``constraint=None``), measured with uscale_ref on
  unit-normal data;
* ``receptive-field.png``: which padded-input positions one output element
  reads (stride 2, dilation 3, K = 3), and which output-gradient elements one
  input-gradient element gathers in dgrad.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import uscale_ref

HERE = Path(__file__).resolve().parent


def _stds(fan_in: int, kernel: int, scaled: bool, rng: np.random.Generator) -> list[float]:
    batch, length, out_channels = 8, 256, 64
    x = rng.standard_normal((batch, fan_in, length))
    w = rng.standard_normal((out_channels, fan_in, kernel))
    if scaled:
        y = uscale_ref.conv1d(x, w, constraint=None)
        g = rng.standard_normal(y.shape)
        grads = uscale_ref.conv1d_backward(g, x, w, constraint=None)
        grad_input, grad_weight = grads.grad_input, grads.grad_weight
    else:
        y = uscale_ref.correlate(x, w)
        g = rng.standard_normal(y.shape)
        grad_input = uscale_ref.correlate_input_grad(g, w, input_length=length)
        grad_weight = uscale_ref.correlate_weight_grad(g, x, kernel_size=kernel)
    return [float(np.std(a)) for a in (y, grad_input, grad_weight)]


def scaling_figure() -> None:
    rng = np.random.default_rng(0)
    fan_ins = [1, 2, 4, 8, 16, 32, 64, 128]
    kernels = [1, 3, 5, 9, 17, 33]
    names = ["output", "grad_input", "grad_weight"]
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4), sharey=True)
    for axis, (label, values, fixed) in zip(
        axes,
        [("fan-in C (K = 5)", fan_ins, "fan_in"), ("kernel length K (C = 16)", kernels, "K")],
        strict=True,
    ):
        for scaled, style in ((False, "--"), (True, "-")):
            rows = [
                _stds(v, 5, scaled, rng) if fixed == "fan_in" else _stds(16, v, scaled, rng)
                for v in values
            ]
            for i, name in enumerate(names):
                axis.plot(
                    values,
                    [r[i] for r in rows],
                    style,
                    marker="o",
                    color=f"C{i}",
                    label=f"{name} ({'unit-scaled' if scaled else 'unscaled'})",
                )
        axis.set_xscale("log", base=2)
        axis.set_yscale("log", base=2)
        axis.set_xlabel(label)
        axis.axhline(1.0, color="grey", linewidth=0.8)
    axes[0].set_ylabel("standard deviation (unit-normal inputs)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(
        "Unscaled convolution grows with fan-in and kernel; the unit-scaled one stays at 1"
    )
    fig.tight_layout()
    fig.savefig(HERE / "scaling.png", dpi=110)
    plt.close(fig)


def receptive_field_figure() -> None:
    stride, dilation, kernel, pad, length = 2, 3, 3, 2, 12
    padded = length + 2 * pad
    out_length = (padded - dilation * (kernel - 1) - 1) // stride + 1
    fig, axes = plt.subplots(2, 1, figsize=(10, 4.6))

    def row(axis, y, count, color_of, label):
        for i in range(count):
            axis.add_patch(plt.Rectangle((i, y), 0.9, 0.9, color=color_of(i), ec="black", lw=0.5))
        axis.text(-0.6, y + 0.45, label, ha="right", va="center", fontsize=9)

    # Forward: output element l reads x_pad[l s + k d].
    axis = axes[0]
    l_chosen = 2
    reads = {l_chosen * stride + k * dilation for k in range(kernel)}
    row(
        axis,
        0,
        padded,
        lambda i: (
            "tab:orange"
            if i in reads
            else ("lightgrey" if i < pad or i >= pad + length else "white")
        ),
        "x_pad",
    )
    row(axis, 2, out_length, lambda i: "tab:blue" if i == l_chosen else "white", "y")
    for t in sorted(reads):
        axis.annotate(
            "",
            xy=(t + 0.45, 0.95),
            xytext=(l_chosen + 0.45, 1.95),
            arrowprops={"arrowstyle": "->", "color": "tab:blue"},
        )
    axis.set_title(
        f"forward: y[l={l_chosen}] reads x_pad[l s + k d], s={stride}, d={dilation}, "
        f"K={kernel} (grey: padding)",
        fontsize=10,
    )

    # dgrad: input-gradient position t gathers delta[l] over l s + k d = t.
    axis = axes[1]
    t_chosen = 8
    sources = {
        (t_chosen - k * dilation) // stride
        for k in range(kernel)
        if (t_chosen - k * dilation) % stride == 0
        and 0 <= (t_chosen - k * dilation) // stride < out_length
    }
    row(axis, 2, out_length, lambda i: "tab:green" if i in sources else "white", "grad_output")
    row(
        axis,
        0,
        padded,
        lambda i: (
            "tab:red"
            if i == t_chosen
            else ("lightgrey" if i < pad or i >= pad + length else "white")
        ),
        "grad x_pad",
    )
    for l_index in sorted(sources):
        axis.annotate(
            "",
            xy=(t_chosen + 0.45, 0.95),
            xytext=(l_index + 0.45, 1.95),
            arrowprops={"arrowstyle": "->", "color": "tab:green"},
        )
    axis.set_title(
        f"dgrad: grad x_pad[t={t_chosen}] gathers grad_output[l] for every "
        "(k, l) with l s + k d = t",
        fontsize=10,
    )
    for axis in axes:
        axis.set_xlim(-4, padded + 0.5)
        axis.set_ylim(-0.3, 3.2)
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(HERE / "receptive-field.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    scaling_figure()
    receptive_field_figure()
    print("wrote", HERE / "scaling.png", "and", HERE / "receptive-field.png")
