"""The conformance runner, the plugin and the helpers under hostile use: right verdicts only.

A kernel that returns nothing must fail; a call that checks nothing must
say so; the caller's mistakes are the caller's; a likely cause is named only
when that mistake really explains the numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from independent import Kernel

import uscale_ref
from uscale_ref import formats, golden, verdict
from uscale_ref.testing import NO_CAUSE, assert_conv1d, to_numpy
from uscale_ref.testing.strategies import case_specs, problems

RIGHT = Kernel()
CASE = "f64_k3"


def _backward_returning(value):
    def backward(*args, **kwargs):
        return value(*args, **kwargs) if callable(value) else value

    return backward


@pytest.mark.parametrize(
    "returned",
    [None, (), (None, None, None), lambda *a, **k: RIGHT.backward(*a, **k)[:2]],
    ids=["None", "empty", "three Nones", "no grad_bias"],
)
def test_a_backward_that_returns_too_little_fails(returned):
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(RIGHT.forward, _backward_returning(returned), filter=CASE, drawn=0)
    assert "the kernel raised" not in str(failure.value)
    assert "1 of 1 cases failed" in str(failure.value)


def test_a_forward_that_returns_none_fails():
    with pytest.raises(AssertionError, match="output is None"):
        assert_conv1d(lambda *a, **k: None, filter=CASE, drawn=0)


def test_one_dtype_name_is_one_dtype():
    report = assert_conv1d(RIGHT.forward, RIGHT.backward, dtypes="float32", drawn=2)
    assert report.cases == len(golden.cases(dtype="float32")) + 2
    assert {dtype for dtype, _ in report.units} == {"float32"}


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"dtypes": ["float8"]}, ValueError, "float8"),
        ({"filter": "nothing*", "drawn": 0}, ValueError, "nothing to check"),
        ({"precision": "bogus"}, ValueError, "precision"),
        ({"drawn": 2.5}, TypeError, "drawn"),
        ({"drawn": "3"}, TypeError, "drawn"),
        ({"sizes": "huge"}, ValueError, "sizes"),
        ({"constraints": ["pow"]}, ValueError, "constraint"),
        ({"dtypes": ["complex32"]}, ValueError, "to_array"),
    ],
)
def test_caller_errors_are_the_callers(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        assert_conv1d(RIGHT.forward, RIGHT.backward, **kwargs)


def test_tf32_precision_with_every_dtype_widens_only_float32_and_complex64():
    report = assert_conv1d(RIGHT.forward, RIGHT.backward, precision="tf32", filter="*_k3", drawn=0)
    assert report.cases == len(golden.cases(dtype=list(golden.suite.FULL_DTYPES), filter="*_k3"))


def test_wrong_shape_and_dtype_are_named_as_such():
    def wrong_dtype(*args, **kwargs):
        return RIGHT.forward(*args, **kwargs).astype(np.float32)

    def wrong_shape(*args, **kwargs):
        return RIGHT.forward(*args, **kwargs)[..., :-1]

    with pytest.raises(AssertionError, match="output has dtype float32, expected float64"):
        assert_conv1d(wrong_dtype, filter=CASE, drawn=0)
    with pytest.raises(AssertionError, match=r"output has shape \(2, 6, 13\), expected"):
        assert_conv1d(wrong_shape, filter=CASE, drawn=0)


def test_bfloat16_results_must_be_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")

    def float64_results(x, w, b, **kwargs):
        assert x.dtype == ml_dtypes.bfloat16  # the default to_array gives bfloat16 arrays
        return RIGHT.forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                             **kwargs)  # fmt: skip

    with pytest.raises(AssertionError, match="expected bfloat16"):
        assert_conv1d(float64_results, dtypes=["bfloat16"], filter="bf16_k3", drawn=0)


def test_counts_include_cases_that_raise_and_unexplained_failures_are_not_summarised():
    def sometimes(x, w, b, **kwargs):
        if kwargs["groups"] > 1:
            raise RuntimeError("groups not implemented")
        return Kernel("flipped kernel").forward(x, w, b, **kwargs)

    ids = golden.cases(dtype="float64")
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(sometimes, dtypes="float64", drawn=0)
    summary = str(failure.value).splitlines()[0]
    assert f"of {len(ids)} cases failed" in summary
    assert "explained by one mistake" not in summary


def test_a_kernel_that_writes_into_its_inputs_is_judged_on_its_results():
    def scribbler(x, w, b, **kwargs):
        y = RIGHT.forward(x, w, b, **kwargs)
        x[...] = 0
        w[...] = 0
        return y

    assert_conv1d(scribbler, dtypes="float64", drawn=0)


def test_an_error_just_past_the_tolerance_names_no_mistake():
    case = golden.load(CASE)
    rule = verdict.rule_for(case.dtype)
    magnitude = np.abs(case.expected["output"]) + np.abs(
        case.metadata["scales"]["output"] * case.inputs["bias"]
    ).reshape(-1, 1)
    bound = rule.bound(case.terms("output"), case.error_scale("output"), magnitude)

    def slightly_off(x, w, b, **kwargs):
        y = RIGHT.forward(x, w, b, **kwargs)
        if kwargs["constraint"] != "to_output_scale" or y.shape != case.expected["output"].shape:
            return y
        return y + 1.5 * bound

    with pytest.raises(AssertionError) as failure:
        assert_conv1d(slightly_off, filter=CASE, drawn=0)
    assert f"likely cause: {NO_CAUSE}" in str(failure.value)


def test_group_order_is_named_on_float32_too():
    kernel = Kernel("group order")
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(kernel.forward, kernel.backward, filter="f32_o2_g2_k3", drawn=0)
    assert "likely cause: groups' channel order" in str(failure.value)


def test_interleaved_output_channels_are_named():
    def source(out_channels, groups):
        per_group = out_channels // groups
        return np.array([g * per_group + i for i in range(per_group) for g in range(groups)])

    def forward(x, w, b, **kwargs):
        y = RIGHT.forward(x, w, b, **kwargs)
        return y[..., source(w.shape[0], kwargs["groups"]), :]

    def backward(g, x, w, b, **kwargs):
        order = np.argsort(source(w.shape[0], kwargs["groups"]))
        return RIGHT.backward(g[..., order, :], x, w, b, **kwargs)

    with pytest.raises(AssertionError) as failure:
        assert_conv1d(forward, backward, filter="f64_o8_g4_k3", drawn=0)
    assert "likely cause: output channels interleaved across groups" in str(failure.value)


def test_the_runner_ignores_the_callers_floating_point_traps():
    with np.errstate(all="raise"):
        assert_conv1d(uscale_ref.conv1d, uscale_ref.conv1d_backward, filter="f16_*", drawn=3)


@settings(max_examples=2, deadline=None, database=None)
@given(st.integers(0, 3))
def test_the_runner_inside_a_users_own_given_test(seed):
    assert_conv1d(RIGHT.forward, RIGHT.backward, filter=CASE, drawn=2, seed=seed)


def test_an_exception_that_cannot_be_printed_is_reported():
    class Broken(Exception):
        def __str__(self):
            raise RuntimeError("no")

    def raises(*args, **kwargs):
        raise Broken

    with pytest.raises(AssertionError, match="the kernel raised Broken: <its message could not"):
        assert_conv1d(raises, filter=CASE, drawn=0)


def test_real_values_print_as_real():
    case = golden.load(CASE)
    wrong = case.expected["output"] + 1.0
    report = golden.compare(case, output=wrong)[0]
    assert "j)" not in report.describe(CASE)
    assert isinstance(report.actual_at_worst, float)


def test_to_numpy_reads_strict_arrays_on_any_device():
    strict = pytest.importorskip("array_api_strict")
    array = strict.asarray([1.0, 2.0], device=strict.Device("device1"))
    np.testing.assert_array_equal(to_numpy(array), [1.0, 2.0])


def test_to_numpy_applies_torch_lazy_negation_and_conjugation():
    torch = pytest.importorskip("torch")
    value = torch.tensor([1 + 2j]).conj().imag  # a tensor with the negative bit set
    np.testing.assert_array_equal(to_numpy(value), [-2.0])
    np.testing.assert_array_equal(to_numpy(torch.tensor([1 + 2j]).conj()), [1 - 2j])


def test_round_to_toward_zero_stops_at_the_largest_number():
    assert formats.round_to(np.array([70000.0, -7e4]), "float16", "toward_zero").tolist() == [
        65504.0, -65504.0,
    ]  # fmt: skip
    largest = formats.FORMATS["tf32"].largest
    assert formats.round_to(np.array([1e39]), "tf32", "toward_zero").tolist() == [largest]
    assert formats.round_to(np.array([500.0]), "float8_e4m3fn", "toward_zero").tolist() == [448.0]
    assert np.isinf(formats.round_to(np.array([np.inf]), "float16", "toward_zero")).all()


def test_spacing_names_an_unknown_format():
    with pytest.raises(ValueError, match="format must be one of"):
        formats.spacing(1.0, "fp8")


def test_backward_on_torch_meta_tensors_gives_shapes():
    torch = pytest.importorskip("torch")
    x, w, b = (torch.empty(s, device="meta") for s in ((2, 4, 16), (6, 2, 3), (6,)))
    kwargs = {"stride": 2, "padding": 1, "groups": 2}
    y = uscale_ref.conv1d(x, w, b, **kwargs)
    g = torch.empty(y.shape, device="meta")
    grads = uscale_ref.conv1d_backward(g, x, w, b, **kwargs)
    assert [tuple(t.shape) for t in grads] == [(2, 4, 16), (6, 2, 3), (6,)]
    assert all(t.device.type == "meta" for t in grads)
    dgrad = uscale_ref.correlate_input_grad(g, w, input_length=16, **kwargs)
    assert tuple(dgrad.shape) == (2, 4, 16)


@settings(max_examples=3, deadline=None)
@given(case_specs(dtypes="float64"), problems(dtypes="complex64"))
def test_strategies_take_one_dtype_name(spec, case):
    assert spec.dtype == "float64"
    assert case.dtype == "complex64"


def test_strategies_refuse_unknown_dtypes():
    with pytest.raises(ValueError, match="flaot32"):
        case_specs(dtypes=["flaot32"])


PLUGIN_TESTS = """
import numpy as np
import pytest
import uscale_ref

@pytest.mark.uscale_ref_golden(filter="f64_k3")
def test_first_scribbles(golden_case):
    golden_case.inputs["input"][...] = 0

@pytest.mark.uscale_ref_golden(filter="f64_k3")
def test_second_sees_the_case_intact(golden_case):
    x, w, b, _ = golden_case.inputs.values()
    golden_case.check(output=uscale_ref.conv1d(x, w, b, **golden_case.kwargs))

@pytest.mark.uscale_ref_golden(filter="f64_k3")
def test_check_without_results(golden_case):
    with pytest.raises(TypeError, match="at least one result"):
        golden_case.check()
"""


def test_plugin_cases_stay_intact_and_check_needs_results(pytester):
    pytester.makepyfile(test_plugin_use=PLUGIN_TESTS)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_plugin_refuses_a_misspelt_dtype(pytester):
    pytester.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.uscale_ref_golden(dtype="flaot32")
        def test_kernel(golden_case):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*flaot32*"])


@settings(max_examples=30, deadline=None)
@given(case_specs(max_channels=1, max_length=5, max_kernel=2))
def test_strategies_keep_their_bounds(spec):
    assert spec.in_channels == spec.out_channels == 1
    assert spec.length <= 5 and spec.kernel_size <= 2


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_complex32_results_must_be_complex32():
    torch = pytest.importorskip("torch")

    def to_chalf(array, dtype):
        return torch.tensor(array).to(torch.complex32 if dtype == "complex32" else None)

    def widened(x, w, b, **kwargs):  # computes right, but hands back complex64
        return uscale_ref.conv1d(x.to(torch.complex64), w.to(torch.complex64),
                                 b.to(torch.complex64), **kwargs)  # fmt: skip

    with pytest.raises(AssertionError, match="output has dtype complex64, expected complex32"):
        assert_conv1d(widened, dtypes=["complex32"], filter="c32_k3", to_array=to_chalf, drawn=0)
    report = assert_conv1d(
        uscale_ref.conv1d, dtypes=["complex32"], filter="c32_k3", to_array=to_chalf, drawn=0
    )
    assert report.cases == 1
