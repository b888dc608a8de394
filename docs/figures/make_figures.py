"""Regenerate the figures of the documentation (needs matplotlib: pip install -e .[docs]).

    python docs/figures/make_figures.py

Writes, next to this script:

* ``scaling.png``: std of output, grad_input and grad_weight against the
  fan-in, the kernel length and the stride, for the plain (unscaled)
  convolution beside the predicted square roots of the term counts, and for
  the unit-scaled one (``constraint=None``), measured with uscale_ref on
  unit-normal data over three seeds; and grad_input under
  ``to_output_scale`` against ``sqrt(O / (s C))``;
* ``receptive-field.png``: which padded-input positions one output element
  reads (stride 2, dilation 3, K = 3), and which output-gradient elements one
  input-gradient element gathers in dgrad;
* ``dgrad.png``: dgrad as the correlation of the zero-inserted, padded
  gradient with the flipped taps, the placeholders and the unread positions;
* ``wgrad.png``: wgrad with the gradient as the kernel, taps s apart,
  stepping by d;
* ``formats.png``: the ranges of float32, bfloat16, float16 and the FP8
  formats against the spread of a unit-scaled and of a small tensor;
* ``verdict-tile-bug.png``: the verdict's picture of a kernel that leaves the
  bias out of its second tile of 64 output channels
  (``examples/user_project/my_kernel.py``), at (2, 256, 1024, 256, 9).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import uscale_ref
from uscale_ref import formats
from uscale_ref.geometry import output_length

HERE = Path(__file__).resolve().parent
plt.rcParams.update({"font.size": 12})


SEEDS = (0, 1, 2)


def _measure(
    channels: int, kernel: int, stride: int, out_channels: int, scaled: bool, constraint=None
) -> np.ndarray:
    """Std of (output, grad_input, grad_weight) over SEEDS: shape (len(SEEDS), 3)."""
    batch, length = 8, 256
    rows = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch, channels, length))
        w = rng.standard_normal((out_channels, channels, kernel))
        kwargs = {"stride": stride}
        if scaled:
            y = uscale_ref.conv1d(x, w, **kwargs, constraint=constraint)
            g = rng.standard_normal(y.shape)
            grads = uscale_ref.conv1d_backward(g, x, w, **kwargs, constraint=constraint)
            values = (y, grads.grad_input, grads.grad_weight)
        else:
            y = uscale_ref.correlate(x, w, **kwargs)
            g = rng.standard_normal(y.shape)
            values = (
                y,
                uscale_ref.correlate_input_grad(g, w, input_length=length, **kwargs),
                uscale_ref.correlate_weight_grad(g, x, kernel_size=kernel, **kwargs),
            )
        rows.append([float(np.std(v)) for v in values])
    return np.array(rows)


def _plot(axis, xs, stds, color, label=None, marker="o"):
    """Mean over seeds with min-max bars; ``label`` names it in the panel's legend."""
    mean = stds.mean(axis=0)
    axis.errorbar(
        xs, mean, yerr=[mean - stds.min(axis=0), stds.max(axis=0) - mean],
        fmt=marker, color=color, markersize=5, capsize=2, linestyle="none", label=label,
    )  # fmt: skip


def scaling_figure() -> None:
    """Measured stds (points, 3 seeds) beside the predicted sqrt of the term counts (lines)."""
    batch, length, out_channels = 8, 256, 64
    names = ("output", "grad_input", "grad_weight")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.2))
    panels = [
        ("fan-in C (K = 5, s = 1)", [1, 4, 16, 64, 128], lambda v: (v, 5, 1)),
        ("kernel length K (C = 16, s = 1)", [1, 3, 5, 9, 17, 33], lambda v: (16, v, 1)),
        ("stride s (C = 16, K = 5)", [1, 2, 3, 4, 8], lambda v: (16, 5, v)),
    ]
    for axis, (label, values, args) in zip(axes.flat[:3], panels, strict=True):
        xs = np.array(values, dtype=float)
        plain = np.stack([_measure(*args(v), out_channels, False) for v in values], axis=2)
        scaled = np.stack([_measure(*args(v), out_channels, True) for v in values], axis=2)
        predicted = []
        for v in values:
            c, k, st = args(v)
            out_length = output_length(length, k, st, 0, 0, 1)
            predicted.append(
                [np.sqrt(c * k), np.sqrt(out_channels * k / st), np.sqrt(batch * out_length)]
            )
        predicted = np.array(predicted)
        for i, name in enumerate(names):
            axis.plot(xs, predicted[:, i], "-", color=f"C{i}", linewidth=0.8)
            _plot(axis, xs, plain[:, i, :], f"C{i}", f"{name}, unscaled")
            scaled_label = "unit-scaled (squares, all three)" if i == 0 else None
            _plot(axis, xs, scaled[:, i, :], f"C{i}", scaled_label, "s")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log", base=2)
        axis.set_xlabel(label)
        axis.axhline(1.0, color="grey", linewidth=0.6)
        axis.set_xlim(xs[0] / 1.3, xs[-1] * 1.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=4, fontsize=11,
               bbox_to_anchor=(0.5, 0.925), frameon=False)  # fmt: skip
    axes[0, 0].set_ylabel("std (points: measured; lines: predicted)")
    axes[1, 0].set_ylabel("std")

    axis = axes[1, 1]  # to_output_scale: grad_input follows sqrt(O / (s C))
    channels, kernel, stride = 32, 5, 1
    ratios = [0.25, 0.5, 1, 2, 4, 8]
    xs = np.array(ratios)
    stds = np.stack(
        [
            _measure(channels, kernel, stride, int(r * channels), True, "to_output_scale")
            for r in ratios
        ],
        axis=2,
    )
    axis.plot(xs, np.sqrt(xs / stride), "-", color="C1", linewidth=0.8)
    axis.plot(xs, np.ones_like(xs), "-", color="C0", linewidth=0.8)
    _plot(axis, xs, stds[:, 1, :], "C1", "grad_input ~ sqrt(O / (s C))", marker="s")
    _plot(axis, xs, stds[:, 0, :], "C0", "output", marker="s")
    axis.legend(loc="upper left", fontsize=10)
    axis.set_xscale("log", base=2)
    axis.set_yscale("log", base=2)
    axis.set_xlim(xs[0] / 1.3, xs[-1] * 1.3)
    axis.set_xlabel("O / C under constraint='to_output_scale' (C = 32, K = 5, s = 1)")
    fig.suptitle(
        "Unit scaling keeps every std near 1; the plain sums grow as the square root of "
        "their term counts\n(constraint=None unless stated; N = 8, L = 256, O = 64; "
        "three seeds, bars: min to max)",
        fontsize=13,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(HERE / "scaling.png", dpi=100)
    plt.close(fig)


def _cells(axis, y, labels, colors, name):
    """A row of labelled boxes at height ``y``."""
    for i, (text, color) in enumerate(zip(labels, colors, strict=True)):
        axis.add_patch(plt.Rectangle((i, y), 0.9, 0.9, facecolor=color, ec="black", lw=0.5))
        axis.text(i + 0.45, y + 0.45, text, ha="center", va="center", fontsize=10)
    axis.text(-0.6, y + 0.45, name, ha="right", va="center", fontsize=11)


def dgrad_figure() -> None:
    """dgrad as the stride-1 correlation of the zero-inserted, padded gradient."""
    length, kernel, stride, dilation, pad = 9, 3, 2, 2, 1
    span = dilation * (kernel - 1)
    out_length = output_length(length, kernel, stride, pad, pad, dilation)
    left = span - pad
    z = [""] * (length + span)
    for l_index in range(out_length):
        z[left + l_index * stride] = f"δ{l_index}"
    t_chosen = 1  # near the edge: one tap meets a padding placeholder
    window = [t_chosen + j * dilation for j in range(kernel)]
    fig, axis = plt.subplots(figsize=(11, 3.4))
    z_colors = [
        "tab:green" if i in window and z[i] else ("#ffd9b3" if i in window else "white")
        for i in range(len(z))
    ]
    _cells(axis, 3, [v or "0" for v in z], z_colors, "zero-inserted,\npadded δ")
    taps = [f"w̄{kernel - 1 - j}" for j in range(kernel)]
    for j, position in enumerate(window):
        axis.text(position + 0.45, 4.35, taps[j], ha="center", fontsize=11, color="tab:blue")
    never = [t for t in range(length) if (t + pad) % np.gcd(stride, dilation)]
    grad_labels = ["0" if t in never else "" for t in range(length)]
    grad_colors = [
        "tab:red" if t == t_chosen else ("lightgrey" if t in never else "white")
        for t in range(length)
    ]
    _cells(axis, 0.5, grad_labels, grad_colors, "grad x")
    for position in window:
        axis.annotate("", xy=(t_chosen + 0.45, 1.45), xytext=(position + 0.45, 2.95),
                      arrowprops={"arrowstyle": "->", "color": "tab:blue", "lw": 0.8})  # fmt: skip
    axis.set_title(
        f"dgrad, s={stride}, d={dilation}, K={kernel}, p={pad}: "
        "grad x[t] = Σ_j w̄[K-1-j] z[t + j d].\n"
        "Flipped taps (blue); only the green entries hold a δ, the orange zeros are "
        "placeholders,\nnever multiplied. Grey: positions no output reads (gcd(s, d) = 2), "
        "their gradient is exactly 0.",
        fontsize=12,
    )
    axis.set_xlim(-3, len(z) + 0.5)
    axis.set_ylim(0.2, 4.8)
    axis.axis("off")
    fig.tight_layout()
    fig.savefig(HERE / "dgrad.png", dpi=100)
    plt.close(fig)


def wgrad_figure() -> None:
    """wgrad: δ is the kernel, taps s apart; the result steps by d over k."""
    length, kernel, stride, dilation, pad = 11, 3, 2, 3, 1
    padded = length + 2 * pad
    out_length = output_length(length, kernel, stride, pad, pad, dilation)
    fig, axes = plt.subplots(kernel, 1, figsize=(11, 1.35 * kernel + 0.8))
    for k, axis in enumerate(axes):
        reads = {k * dilation + l_index * stride: l_index for l_index in range(out_length)}
        labels = [f"δ{reads[i]}" if i in reads else "" for i in range(padded)]
        colors = [
            "tab:orange"
            if i in reads
            else ("lightgrey" if i < pad or i >= pad + length else "white")
            for i in range(padded)
        ]
        _cells(axis, 0, labels, colors, f"grad w[k={k}]\nreads x_pad")
        axis.annotate("", xy=(k * dilation + 0.45, -0.05), xytext=(0.45, -0.05),
                      arrowprops={"arrowstyle": "->", "color": "tab:purple"})  # fmt: skip
        axis.text(k * dilation / 2 + 0.45, -0.45, f"k d = {k * dilation}", ha="center",
                  fontsize=10, color="tab:purple")  # fmt: skip
        axis.set_xlim(-3, padded + 0.5)
        axis.set_ylim(-0.7, 1.0)
        axis.axis("off")
    axes[0].set_title(
        f"wgrad, s={stride}, d={dilation}, K={kernel}, p={pad}: "
        "grad w[k] = Σ_l δ[l] conj(x_pad[k d + l s])."
        " δ is the kernel, its taps s apart;\nthe result steps by d from one k to the next "
        "(stride and dilation swap roles). Grey: padding.",
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(HERE / "wgrad.png", dpi=100)
    plt.close(fig)


# The figure's rows: float32 and the formats of uscale_ref.formats (not TF32,
# whose range is float32's).
FIGURE_FORMATS = {
    "float32": formats.Format("float32", 8, 23, float(np.finfo(np.float32).max)),
    **{name: formats.FORMATS[name] for name in
       ("bfloat16", "float16", "float8_e5m2", "float8_e4m3fn")},
}  # fmt: skip


def formats_figure() -> None:
    """The ranges of the low-precision formats against the spread of a tensor."""
    fig, axis = plt.subplots(figsize=(10, 3.8))
    for row, spec in enumerate(FIGURE_FORMATS.values()):
        subnormal, normal, largest = spec.smallest_subnormal, spec.smallest_normal, spec.largest
        axis.barh(row, np.log2(normal) - np.log2(subnormal), left=np.log2(subnormal),
                  color="#c6dbef", height=0.6)  # fmt: skip
        axis.barh(row, np.log2(largest) - np.log2(normal), left=np.log2(normal),
                  color="#2171b5", height=0.6)  # fmt: skip
    axis.set_yticks(range(len(FIGURE_FORMATS)), list(FIGURE_FORMATS))
    for sigma, label, color in ((1.0, "unit-scaled", "tab:green"),
                                (2.0**-14, "std 2^-14", "tab:red")):  # fmt: skip
        # 0.1 % to 99.9 % of |x| for x ~ N(0, sigma^2)
        low, high = np.log2(sigma * 1.25e-3), np.log2(sigma * 3.29)
        axis.axvspan(low, high, color=color, alpha=0.18)
        axis.text((low + high) / 2, -0.85, label, ha="center", fontsize=11, color=color,
                  bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip
    axis.set_xlim(-40, 40)
    axis.set_ylim(-1.1, len(FIGURE_FORMATS) - 0.5)
    axis.set_xlabel(
        "log2 |value|   (light: subnormal, dark: normal range;\n"
        "float32 and bfloat16 run on to 2^-149 / 2^-133 and 2^128)"
    )
    axis.set_title(
        "Where a tensor's values fall in each format: the central 99.8 % of |x| for x ~ N(0, σ²)",
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(HERE / "formats.png", dpi=100)
    plt.close(fig)


def receptive_field_figure() -> None:
    stride, dilation, kernel, pad, length = 2, 3, 3, 2, 12
    padded = length + 2 * pad
    out_length = output_length(length, kernel, stride, pad, pad, dilation)
    fig, axes = plt.subplots(2, 1, figsize=(10, 4.6))

    def row(axis, y, count, color_of, label):
        for i in range(count):
            axis.add_patch(plt.Rectangle((i, y), 0.9, 0.9, color=color_of(i), ec="black", lw=0.5))
        axis.text(-0.6, y + 0.45, label, ha="right", va="center", fontsize=12)

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
        fontsize=13,
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
        fontsize=13,
    )
    for axis in axes:
        axis.set_xlim(-4, padded + 0.5)
        axis.set_ylim(-0.3, 3.2)
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(HERE / "receptive-field.png", dpi=110)
    plt.close(fig)


def verdict_figure() -> None:
    import os
    import sys

    from uscale_ref import verdict
    from uscale_ref.golden import CaseSpec, Fixture
    from uscale_ref.golden.fixture import build
    from uscale_ref.testing import to_numpy

    os.environ["MY_KERNEL_TILE_BUG"] = "1"
    sys.path.insert(0, str(HERE.parents[1] / "examples" / "user_project"))
    from my_kernel import my_conv1d, my_conv1d_backward

    spec = CaseSpec(dtype="float32", batch_size=2, in_channels=256, length=1024,
                    out_channels=256, kernel_size=9, padding="same")  # fmt: skip
    arrays, metadata = build(spec)
    case = Fixture(spec.id, metadata, arrays)
    x, w, b, g = (case.inputs[k] for k in ("input", "weight", "bias", "grad_output"))
    grads = my_conv1d_backward(g, x, w, b, **case.kwargs)
    results = {"output": my_conv1d(x, w, b, **case.kwargs), "grad_input": grads.grad_input}
    results = {k: to_numpy(v) for k, v in results.items()}
    judged = verdict.judge(case, results, reference=True)
    judged.plot(HERE / "verdict-tile-bug.png")


if __name__ == "__main__":
    for make in (
        scaling_figure,
        receptive_field_figure,
        dgrad_figure,
        wgrad_figure,
        formats_figure,
        verdict_figure,
    ):
        make()
    print(
        "wrote scaling.png, receptive-field.png, dgrad.png, wgrad.png, formats.png,",
        "verdict-tile-bug.png in",
        HERE,
    )
