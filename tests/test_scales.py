"""Scale formulas, constraints, and the unit-scale property itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference

import uscale_ref
from uscale_ref import constraints


@pytest.mark.parametrize("constraint", constraints.CONSTRAINT_NAMES)
@pytest.mark.parametrize(
    ("input_shape", "weight_shape", "kwargs"),
    [
        ((2, 4, 10), (8, 4, 3), {}),
        ((4, 10), (8, 4, 3), {"padding": 1}),
        ((3, 6, 50), (9, 2, 5), {"stride": 3, "padding": 2, "dilation": 2, "groups": 3}),
        ((1, 8, 17), (8, 1, 4), {"padding": "same", "groups": 8}),
    ],
)
def test_scale_formulas(input_shape, weight_shape, kwargs, constraint):
    scales = uscale_ref.conv1d_scales(input_shape, weight_shape, **kwargs, constraint=constraint)
    geometry = uscale_ref.conv1d_geometry(input_shape, weight_shape, **kwargs)
    expected = reference.reference_scales(
        input_shape[0] if len(input_shape) == 3 else None,
        geometry.out_length,
        weight_shape[0],
        weight_shape[1],
        weight_shape[2],
        kwargs.get("stride", 1),
        kwargs.get("groups", 1),
        constraint,
    )
    assert tuple(scales) == pytest.approx(expected, rel=1e-15)


def test_constraint_functions():
    assert constraints.gmean(2.0, 8.0) == pytest.approx(4.0)
    assert constraints.hmean(2.0, 6.0) == pytest.approx(3.0)
    assert constraints.amean(2.0, 6.0) == 4.0
    assert constraints.to_output_scale(2.0, 6.0) == 2.0
    assert constraints.to_grad_input_scale(2.0, 6.0) == 6.0
    assert constraints.apply_constraint("hmean", 2.0, 6.0) == pytest.approx((3.0, 3.0))
    assert constraints.apply_constraint("", 2.0, 6.0) == (2.0, 6.0)
    assert constraints.apply_constraint(None, 2.0, 6.0) == (2.0, 6.0)
    assert set(constraints.CONSTRAINT_NAMES) == {
        None,
        "",
        "gmean",
        "hmean",
        "amean",
        "to_output_scale",
        "to_grad_input_scale",
    }


def test_default_constraint_is_to_output_scale():
    """The signature's default runs, not the upstream docstring's 'gmean'."""
    default = uscale_ref.conv1d_scales((2, 4, 10), (8, 4, 3))
    explicit = uscale_ref.conv1d_scales((2, 4, 10), (8, 4, 3), constraint="to_output_scale")
    gmean = uscale_ref.conv1d_scales((2, 4, 10), (8, 4, 3), constraint="gmean")
    assert default == explicit
    assert default != gmean


def test_same_padding_scale_uses_actual_output_length():
    scales = uscale_ref.conv1d_scales((3, 4, 17), (2, 4, 4), padding="same", dilation=3)
    assert scales.grad_weight == pytest.approx(1 / math.sqrt(3 * 17))


def _unit_normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# Upstream's own statistical test shape, float32: N=64, C=192, O=320, K=11, L=448.
STAT_SHAPES = [
    pytest.param(dict(N=64, C=192, O=320, K=11, L=448), id="upstream_shape"),
    pytest.param(
        dict(N=16, C=64, O=512, K=5, L=256, stride=2, padding=2, groups=4), id="strided_grouped"
    ),
    pytest.param(
        dict(N=8, C=512, O=512, K=7, L=256, padding="same", groups=512, dilation=2),
        id="depthwise_dilated_same",
    ),
]
# Every shape has at least 512 output channels: the std of grad_bias is
# estimated from C_out numbers, with a standard error of about 1 / sqrt(2 C_out).


def _draw(rng, spec):
    kwargs = {k: spec[k] for k in ("stride", "padding", "dilation", "groups") if k in spec}
    groups = spec.get("groups", 1)
    x = _unit_normal(rng, (spec["N"], spec["C"], spec["L"]), np.float32)
    w = _unit_normal(rng, (spec["O"], spec["C"] // groups, spec["K"]), np.float32)
    b = _unit_normal(rng, (spec["O"],), np.float32)
    return x, w, b, kwargs


@pytest.mark.parametrize("spec", STAT_SHAPES)
def test_unit_scaled_without_constraint(rng, spec):
    """Unit-normal inputs and gradient give unit-std output and gradients (within 0.1)."""
    x, w, b, kwargs = _draw(rng, spec)
    y = uscale_ref.conv1d(x, w, None, **kwargs, constraint=None)
    g = _unit_normal(rng, y.shape, np.float32)
    grads = uscale_ref.conv1d_backward(g, x, w, b, **kwargs, constraint=None)
    # With "same"/padding the edges see fewer terms, so those stds sit a little
    # under 1, as upstream's own do.
    for name, value in [("output", y), *zip(grads._fields, grads, strict=True)]:
        assert abs(float(np.std(value)) - 1.0) < 0.1, (name, float(np.std(value)))


@pytest.mark.parametrize("spec", STAT_SHAPES)
def test_default_constraint_grad_input_std(rng, spec):
    """Under to_output_scale, std(grad_input) follows sqrt(C_out / (stride * C_in))."""
    x, w, _, kwargs = _draw(rng, spec)
    y = uscale_ref.conv1d(x, w, None, **kwargs)
    assert abs(float(np.std(y)) - 1.0) < 0.1
    g = _unit_normal(rng, y.shape, np.float32)
    grad_input = uscale_ref.conv1d_backward(g, x, w, **kwargs).grad_input
    predicted = math.sqrt(spec["O"] / (spec.get("stride", 1) * spec["C"]))
    assert abs(float(np.std(grad_input)) / predicted - 1.0) < 0.1, (
        float(np.std(grad_input)),
        predicted,
    )
