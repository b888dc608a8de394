"""Every malformed call raises a ValueError or TypeError that names the argument.

Cases are data: (id, changes to a valid call, expected exception, message pattern).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import uscale_ref

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 10))
W = rng.standard_normal((6, 4, 3))
B = rng.standard_normal(6)
G = rng.standard_normal((2, 6, 8))

BAD_CALLS = [
    # arrays
    ("input_list", {"input": [[1.0, 2.0]]}, TypeError, r"input must be an array"),
    ("weight_none", {"weight": None}, TypeError, r"weight must be an array"),
    ("input_rank1", {"input": X[0, 0]}, ValueError, r"input must have 2 or 3 dimensions"),
    ("input_rank4", {"input": X[None]}, ValueError, r"input must have 2 or 3 dimensions"),
    ("weight_rank2", {"weight": W[:, :, 0]}, ValueError, r"weight must have 3 dimensions"),
    ("channel_mismatch", {"weight": W[:, :3]}, ValueError, r"weight.shape\[1\] must be C / groups"),
    ("bias_length", {"bias": B[:5]}, ValueError, r"bias must have shape \(C_out,\) = \(6,\)"),
    ("bias_rank2", {"bias": B[None]}, ValueError, r"bias must have shape"),
    ("empty_batch", {"input": X[:0]}, ValueError, r"non-empty batch"),
    ("zero_channels", {"input": X[:, :0], "weight": W[:, :0]}, ValueError, r"C >= 1"),
    ("zero_length", {"input": X[..., :0]}, ValueError, r"L >= 1"),
    (
        "zero_out_channels",
        {"weight": W[:0], "bias": None},
        ValueError,
        r"weight must have no empty",
    ),
    (
        "kernel_longer_than_input",
        {"input": X[..., :2]},
        ValueError,
        r"kernel .* is longer than the padded input",
    ),
    ("dilated_kernel_too_long", {"dilation": 5}, ValueError, r"longer than the padded input"),
    # dtypes
    (
        "int_input",
        {"input": X.astype(np.int64), "weight": W.astype(np.int64), "bias": None},
        TypeError,
        r"input must have a floating dtype",
    ),
    (
        "bool_input",
        {"input": X > 0, "weight": W > 0, "bias": None},
        TypeError,
        r"input must have a floating dtype",
    ),
    (
        "mixed_weight_dtype",
        {"weight": W.astype(np.float32)},
        TypeError,
        r"weight must have the same dtype as input \(float64\), got float32",
    ),
    (
        "mixed_bias_dtype",
        {"bias": B.astype(np.complex128)},
        TypeError,
        r"bias must have the same dtype as input",
    ),
    # stride / dilation / padding / groups
    ("stride_zero", {"stride": 0}, ValueError, r"stride must be >= 1, got 0"),
    ("stride_negative", {"stride": -1}, ValueError, r"stride must be >= 1"),
    ("stride_float", {"stride": 1.5}, TypeError, r"stride must be an int"),
    ("stride_bool", {"stride": True}, TypeError, r"stride must be an int .* got a bool"),
    ("stride_two_tuple", {"stride": (1, 1)}, ValueError, r"stride must be an int or a one-element"),
    ("dilation_zero", {"dilation": 0}, ValueError, r"dilation must be >= 1"),
    ("dilation_str", {"dilation": "2"}, TypeError, r"dilation must be an int"),
    ("padding_negative", {"padding": -1}, ValueError, r"padding must be >= 0, got -1"),
    ("padding_negative_tuple", {"padding": (-2,)}, ValueError, r"padding must be >= 0"),
    (
        "padding_unknown_string",
        {"padding": "full"},
        ValueError,
        r"padding must be 'valid', 'same', an int",
    ),
    ("padding_float", {"padding": 1.0}, TypeError, r"padding must be an int"),
    (
        "padding_empty_tuple",
        {"padding": ()},
        ValueError,
        r"padding must be an int or a one-element",
    ),
    (
        "same_with_stride",
        {"padding": "same", "stride": 2},
        ValueError,
        r"padding='same' requires stride=1",
    ),
    ("groups_zero", {"groups": 0}, ValueError, r"groups must be >= 1"),
    ("groups_float", {"groups": 2.0}, TypeError, r"groups must be an int"),
    (
        "groups_not_dividing_input",
        {"groups": 3, "weight": W[:, :1]},
        ValueError,
        r"groups=3 must divide the input channels C=4",
    ),
    (
        "groups_not_dividing_output",
        {"groups": 4, "weight": W[:5, :1], "bias": B[:5]},
        ValueError,
        r"groups=4 must divide the output channels",
    ),
    ("groups_weight_mismatch", {"groups": 2}, ValueError, r"weight.shape\[1\] must be C / groups"),
    # constraint and scale_power
    ("constraint_unknown", {"constraint": "pow"}, ValueError, r"constraint must be one of"),
    ("constraint_case", {"constraint": "GMEAN"}, ValueError, r"constraint must be one of"),
    ("constraint_int", {"constraint": 1}, TypeError, r"constraint must be None or a string"),
    (
        "scale_power_short",
        {"scale_power": (0.5, 0.5)},
        ValueError,
        r"scale_power must have three entries",
    ),
    ("scale_power_scalar", {"scale_power": 0.5}, TypeError, r"scale_power must be a sequence"),
    ("scale_power_string", {"scale_power": "abc"}, TypeError, r"scale_power must be a sequence"),
    (
        "scale_power_complex",
        {"scale_power": (0.5, 1j, 0.5)},
        TypeError,
        r"scale_power entries must be real",
    ),
    (
        "scale_power_nan",
        {"scale_power": (0.5, float("nan"), 0.5)},
        ValueError,
        r"scale_power entries must be finite",
    ),
]


def _call(function, changes, impl=uscale_ref):
    args = {"input": X, "weight": W, "bias": B}
    args.update(changes)
    if function == "forward":
        return impl.conv1d(**args)
    return impl.conv1d_backward(G, **args)


@pytest.mark.parametrize("function", ["forward", "backward"])
@pytest.mark.parametrize(
    ("changes", "error", "pattern"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD_CALLS],
)
def test_bad_input_is_refused(impl, function, changes, error, pattern):
    with pytest.raises(error, match=pattern):
        _call(function, changes, impl)


BAD_BACKWARD = [
    ("grad_output_shape", G[..., :7], ValueError, r"grad_output must have the output's shape"),
    (
        "grad_output_dtype",
        G.astype(np.float32),
        TypeError,
        r"grad_output must have the same dtype as input",
    ),
    ("grad_output_list", G.tolist(), TypeError, r"grad_output must be an array"),
]


@pytest.mark.parametrize(
    ("grad_output", "error", "pattern"), [pytest.param(*row[1:], id=row[0]) for row in BAD_BACKWARD]
)
def test_bad_grad_output_is_refused(impl, grad_output, error, pattern):
    with pytest.raises(error, match=pattern):
        impl.conv1d_backward(grad_output, X, W, B)


def test_mixed_libraries_are_refused():
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match=r"arrays must all come from one array library"):
        uscale_ref.conv1d(X, strict.asarray(W))


def test_numpy_and_strict_calls_in_one_process_raise_no_warning():
    """Cached per dtype, NumPy's and array-api-strict's dtypes are never compared."""
    strict = pytest.importorskip("array_api_strict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for xp in (np, strict, np, strict):
            for dtype in (xp.float32, xp.float64, xp.complex64):
                x, w = xp.asarray(X, dtype=dtype), xp.asarray(W, dtype=dtype)
                uscale_ref.conv1d_backward(uscale_ref.conv1d(x, w), x, w)


def test_mixed_devices_are_refused():
    strict = pytest.importorskip("array_api_strict")
    x = strict.asarray(X)
    w = strict.asarray(W, device=strict.Device("device1"))
    with pytest.raises(ValueError, match=r"weight must be on the same device as input"):
        uscale_ref.conv1d(x, w)


def test_refused_before_any_work(monkeypatch):
    """Checks run first: the arithmetic is never reached with a bad argument."""
    from uscale_ref import kernels

    def fail(*args, **kwargs):
        raise AssertionError("arithmetic reached")

    for name in ("forward", "input_grad", "weight_grad"):
        monkeypatch.setattr(kernels, name, fail)
    for _, changes, error, _ in BAD_CALLS:
        for function in ("forward", "backward"):
            with pytest.raises(error):
                _call(function, changes)


def test_scales_function_checks_shapes():
    with pytest.raises(ValueError, match=re.escape("input must have 2 or 3 dimensions")):
        uscale_ref.conv1d_scales((4,), (2, 4, 3))
    with pytest.raises(ValueError, match=r"non-empty batch"):
        uscale_ref.conv1d_scales((0, 4, 10), (2, 4, 3))


def test_primitive_argument_errors():
    with pytest.raises(TypeError, match=r"kernel_size must be an int"):
        uscale_ref.correlate_weight_grad(G, X, kernel_size=3.0)
    with pytest.raises(ValueError, match=r"grad_output must have the output's shape"):
        uscale_ref.correlate_weight_grad(G, X, kernel_size=2)
    with pytest.raises(ValueError, match=r"grad_output must have the output's shape"):
        uscale_ref.correlate_input_grad(G, W, input_length=11)
    with pytest.raises(TypeError, match=r"input_length must be an int"):
        uscale_ref.correlate_input_grad(G, W, input_length=10.0)


def test_an_array_given_for_a_shape_is_named_by_its_shape_not_printed():
    with pytest.raises(TypeError) as error:
        uscale_ref.conv1d_scales(np.zeros((2, 3, 40)), (4, 3, 1))
    text = str(error.value)
    assert "got a ndarray of shape (2, 3, 40) (pass its .shape)" in text
    assert "0., 0." not in text and len(text) < 200


def test_a_case_string_with_commas_in_scale_power_shows_the_colon_form():
    from uscale_ref.golden.caselist import parse_case

    with pytest.raises(ValueError, match=re.escape("written with colons: 1:0.25:0.75")):
        parse_case("dtype=float32,scale_power=0.5,0.5,0.5")
