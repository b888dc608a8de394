"""Results below the smallest normal: a correct kernel that rounds before it scales passes.

Below float16's smallest normal (6.1e-5) its numbers are spaced 2**-24 apart
whatever their size, so a kernel that rounds the sum to float16 and then
multiplies by the scale (as upstream does) may land a whole subnormal step
from the once-rounded exact value, far more than any bound relative to the
value allows. The bound has an absolute term for it (``Rule.absolute``).
A ``scale_power`` of 8 makes every scale tiny, so that most results of a
small case are subnormal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import uscale_ref
from uscale_ref import verdict
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build
from uscale_ref.tolerance.rule import rule_for

SPEC = CaseSpec(dtype="float16", batch_size=2, in_channels=64, length=256, out_channels=64,
                kernel_size=4, padding="same", groups=64, scale_power=(8, 8, 8))  # fmt: skip
_CASE: list[Fixture] = []


def case() -> Fixture:
    if not _CASE:
        arrays, metadata = build(SPEC)
        _CASE.append(Fixture(SPEC.id, metadata, arrays))
    return _CASE[0]


def rounds_then_scales(fixture: Fixture) -> dict[str, np.ndarray]:
    """Each sum accumulated in float32 and rounded to float16, then multiplied by the scale
    rounded to float16, and rounded again: upstream's arithmetic, in NumPy."""
    x, w, b, g = (fixture.inputs[k].astype(np.float32) for k in
                  ("input", "weight", "bias", "grad_output"))  # fmt: skip
    kw = {**fixture.kwargs, "scale_power": (0.0, 0.0, 0.0), "constraint": None}
    unscaled = {"output": uscale_ref.conv1d(x, w, b, **kw),
                **uscale_ref.conv1d_backward(g, x, w, b, **kw)._asdict()}  # fmt: skip
    scales = fixture.metadata["scales"]
    return {
        name: (value.astype(np.float16) * np.float16(scales[name])).astype(np.float16)
        for name, value in unscaled.items()
    }


def test_the_case_is_subnormal_and_a_kernel_that_rounds_before_scaling_passes():
    fixture = case()
    results = rounds_then_scales(fixture)
    tiny = np.finfo(np.float16).smallest_normal
    assert np.mean(np.abs(fixture.expected["grad_input"].astype(np.float64)) < tiny) > 0.9
    judged = verdict.judge(fixture, results)
    assert judged.passed, judged.describe()


def test_without_the_absolute_term_the_same_kernel_would_fail():
    # What the absolute term holds: errors of a whole subnormal step, beyond any bound
    # relative to the values.
    fixture = case()
    results = rounds_then_scales(fixture)
    rule = rule_for("float16")
    name = "grad_input"
    expected = fixture.expected[name].astype(np.float64)
    error = np.abs(results[name].astype(np.float64) - expected)
    scale = fixture.metadata["scales"][name]
    relative = rule.bound(fixture.terms(name), fixture.error_scale(name), np.abs(expected), scale)
    relative = relative - rule.absolute(fixture.terms(name), scale)
    assert np.any(error > relative)
    assert np.max(error) <= 2.0**-24


def test_a_subnormal_step_off_in_the_wrong_place_still_fails():
    fixture = case()
    results = rounds_then_scales(fixture)
    results["output"] = (results["output"].astype(np.float32) + 2 * 2.0**-24).astype(np.float16)
    assert not verdict.judge(fixture, results).passed


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_pytorch_float16_depthwise_backward_passes_where_torch_is_installed():
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from torch_arithmetic import taps_summed_in

    fixture = case()
    kw = fixture.kwargs
    x, w, b, g = (torch.tensor(fixture.inputs[k]) for k in
                  ("input", "weight", "bias", "grad_output"))  # fmt: skip
    for t in (x, w, b):
        t.requires_grad_()
    scales = fixture.metadata["scales"]
    y = torch.nn.functional.conv1d(x, w, b, padding=kw["padding"], groups=kw["groups"])
    y.backward(g)
    results = {
        "output": (y * torch.tensor(scales["output"], dtype=torch.float16)).detach().numpy(),
        "grad_input": (x.grad * torch.tensor(scales["grad_input"], dtype=torch.float16)).numpy(),
        "grad_weight": (w.grad * torch.tensor(scales["grad_weight"], dtype=torch.float16)).numpy(),
        "grad_bias": (b.grad * torch.tensor(scales["grad_bias"], dtype=torch.float16)).numpy(),
    }
    judged = verdict.judge(fixture, results, accumulate=taps_summed_in("float16"))
    assert judged.passed, judged.describe()
