"""The verdict's parts on their own: the rule's numbers, precision, bias, conventions, reports."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from calibration import CORRECT, stored, to_format

import uscale_ref
from uscale_ref import golden, verdict
from uscale_ref.golden import CaseSpec, Fixture
from uscale_ref.golden.fixture import build, read, to_bytes
from uscale_ref.tolerance.layout import groups_of, layout_of
from uscale_ref.verdict.bias import bias_figure
from uscale_ref.verdict.precision import precision_figure, ratios


def fixture(dtype="float32", **sizes):
    shape = {"batch_size": 2, "in_channels": 16, "length": 128, "out_channels": 16,
             "kernel_size": 3, "padding": 1, **sizes}  # fmt: skip
    spec = CaseSpec(dtype=dtype, suite="tests", **shape)
    arrays, metadata = build(spec)
    return Fixture(spec.id, metadata, arrays)


def exact(case):
    """uscale_ref in float64 / complex128 on the case's inputs (before any rounding)."""
    wide = np.complex128 if case.storage_dtype.startswith("complex") else np.float64
    x, w, b, g = (None if v is None else v.astype(wide) for v in case.inputs.values())
    grads = uscale_ref.conv1d_backward(g, x, w, b, **case.kwargs)
    return {"output": uscale_ref.conv1d(x, w, b, **case.kwargs), **grads._asdict()}


# -- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "accumulation", "output"),
    [("float16", "float32", "float16"), ("bfloat16", "float32", "bfloat16"),
     ("complex32", "float32", "float16"), ("float32", "float32", "float32"),
     ("complex64", "float32", "float32"), ("float64", "float64", "float64"),
     ("complex128", "float64", "float64")],
)  # fmt: skip
def test_default_accumulation_per_dtype(dtype, accumulation, output):
    rule = verdict.rule_for(dtype)
    assert (rule.accumulate, rule.output_format) == (accumulation, output)
    assert rule.u_out == 2.0**-rule.bits


def test_a_kernel_that_sums_in_bfloat16_gets_the_worst_case_bound_of_such_sums():
    narrow = verdict.rule_for("bfloat16", accumulate="bfloat16")
    default = verdict.rule_for("bfloat16")
    scale, rounded = np.array([1.0]), np.array([0.05])
    assert narrow.bound(100, scale, rounded)[0] >= 102 * 2.0**-8
    assert narrow.bound(300, scale, rounded)[0] == math.inf  # 300 u >= 1: no finite bound
    expected = default.accumulation_units(300) * 2.0**-24 + default.output_units * 2.0**-8 * 0.05
    assert default.bound(300, scale, rounded)[0] == pytest.approx(expected)
    assert default.output_units == 5 * (1 + 5 * 2.0**-8)


def test_the_rule_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match="accumulate must be one of"):
        verdict.rule_for("float32", accumulate="tf32")
    with pytest.raises(ValueError, match="precision 'tf32' applies to float32 and complex64"):
        verdict.rule_for("float64", "tf32")
    assert verdict.rule_for("float64", "tf32", strict=False).precision == "exact"
    with pytest.raises(ValueError, match="skip: 'bonds' is not one of"):
        verdict.rule_for("float32", skip=["bonds"])
    with pytest.raises(ValueError, match="leaves nothing to check"):
        verdict.rule_for("float32", skip=["bound", "precision", "bias"])


def test_the_metadata_says_what_a_reader_in_another_language_needs():
    case = golden.load("bf16_k3")
    tolerance = case.metadata["tolerance"]
    assert case.metadata["format_version"] == golden.FORMAT_VERSION == 3
    assert tolerance["accumulation"] == "float32" and tolerance["output_format"] == "bfloat16"
    rule = verdict.rule_for("bfloat16")
    for name, terms in tolerance["terms"].items():
        assert tolerance["accumulation_units"][name] == rule.accumulation_units(terms)
        assert terms + 2 < rule.accumulation_units(terms) < terms + 2 + 1e-4
        assert tolerance["bias"]["allowed"][name] == [
            list(pair) for pair in rule.allowed_scale_errors(0.0, case.scale_centres(name))
        ]
    assert tolerance["output_units"] == rule.output_units
    assert tolerance["precision"] == {**tolerance["precision"], "format_bits": 8, "block": 64}


def test_a_version_1_fixture_is_still_judged(tmp_path):
    case = golden.load("f32_k3")
    metadata = json.loads(json.dumps(case.metadata))
    metadata["format_version"] = 1
    metadata["tolerance"] = {"terms": metadata["tolerance"]["terms"]}
    path = tmp_path / "old.npz"
    path.write_bytes(to_bytes(case.arrays, metadata))
    old = read(path)
    assert old.scale_centres("output") is None
    assert verdict.judge(old, case.expected).passed
    wrong = {"output": case.expected["output"] * np.float32(1.5)}
    assert not verdict.judge(old, wrong).passed


# -- the element bound -----------------------------------------------------------------------


def test_equal_infinities_and_nans_pass_and_a_nan_where_a_number_is_expected_fails():
    case = golden.load("f64_k3")
    expected = case.expected["output"].copy()
    fake = Fixture(case.id, case.metadata, {**case.arrays, "output": expected})
    expected[0, 0, 0], expected[0, 0, 1] = np.inf, np.nan
    assert verdict.judge(fake, {"output": expected.copy()}).passed
    result = expected.copy()
    result[0, 1, 0] = np.nan
    report = verdict.judge(fake, {"output": result}).arrays[0]
    assert not report.passed and report.failing == 1 and report.worst_index == (0, 1, 0)


def test_the_bound_holds_for_the_worst_rounding_of_each_allowed_kind():
    """Four roundings of the output format (sum, bias, scale, product), each a full unit."""
    case = fixture("bfloat16", in_channels=64, out_channels=64)
    y = exact(case)["output"]
    scale = case.metadata["scales"]["output"]
    b = case.inputs["bias"].astype(np.float64)[:, None]
    u = 2.0**-8
    unscaled = y / scale - b  # the sum without the bias
    # Each rounding a full unit, all the same way: the sum, the bias add, the scale, the product.
    worst = scale * (1 + u) * ((unscaled * (1 + u) + b) * (1 + u)) * (1 + u)
    rounded = np.abs(case.expected["output"]) + np.abs(scale * b)
    rule = verdict.rule_for("bfloat16")
    bound = rule.bound(case.terms("output"), case.error_scale("output"), rounded)
    assert np.all(np.abs(worst - y) <= bound)


# -- precision -------------------------------------------------------------------------------


def test_precision_reads_the_size_of_the_errors_in_bits():
    layout = layout_of("output", (2, 8, 256))
    ratio = np.full((2, 8, 256), 2.0**5)
    figure = precision_figure(ratio, groups_of(layout), 24, 3.0)
    assert figure.bits == pytest.approx(19.0) and not figure.passed
    ratio[:] = 0.5
    ratio[:, 5, 64:128] = 2.0**4.5  # one tile of 8 x 4 = 32 tiles
    figure = precision_figure(ratio, groups_of(layout), 24, 3.0)
    assert figure.row_bits.shape == (8,) and figure.tile_bits.shape == (8, 4)
    assert figure.tile_bits[5, 1] == pytest.approx(19.5) and figure.worst_tile == (5, 1)
    assert figure.failing_tiles == 1 and not figure.passed
    assert figure.bits > 21  # the whole array alone would not see it
    assert layout.tile_name(5, 1) == "o = 5, l in 64..127"


def test_an_exact_result_has_infinite_precision_and_a_required_zero_must_be_zero():
    layout = layout_of("grad_weight", (4, 7, 10))
    assert precision_figure(np.zeros((4, 70)), groups_of(layout), 53, 3).bits == math.inf
    error, yardstick = np.array([0.0, 1e-300, 1.0]), np.array([0.0, 0.0, np.nan])
    assert ratios(error, yardstick).tolist() == [0.0, math.inf, math.inf]


# -- bias ------------------------------------------------------------------------------------


def test_a_scale_error_is_estimated_and_a_symmetric_one_is_not_seen():
    rng = np.random.default_rng(3)
    expected = rng.standard_normal((4, 32, 500))
    layout = groups_of(layout_of("output", expected.shape))
    noise = 1e-7 * np.abs(expected) * rng.choice([-1.0, 1.0], size=expected.shape)
    clean = bias_figure(noise, expected, layout, [(-1e-9, 1e-9)], 8.0)
    assert clean.passed and clean.z < 5
    scaled = bias_figure(noise + 1e-6 * expected, expected, layout, [(-1e-9, 1e-9)], 8.0)
    assert not scaled.passed and scaled.estimate == pytest.approx(1e-6, rel=0.05)
    # A constant offset per row (a bias term rounded on its own) is not a scale error.
    offset = noise + 1e-6 * rng.standard_normal((1, 32, 1))
    assert bias_figure(offset, expected + 3, layout, [(-1e-9, 1e-9)], 8.0).passed


def test_the_z_statistic_keeps_its_tail_bound_on_symmetric_errors():
    """P(|z| > t) <= 2 exp(-t^2 / 2) for independent symmetric errors of any sizes."""
    rng = np.random.default_rng(4)
    expected = rng.standard_normal((1, 1, 400))
    layout = groups_of(layout_of("grad_bias", (400,)))
    sizes = rng.pareto(1.5, size=400)  # heavy-tailed sizes: the bound does not care
    zs = [
        bias_figure(sizes * rng.choice([-1.0, 1.0], 400), expected[0, 0], layout, [(0, 0)], 8).z
        for _ in range(2000)
    ]
    for t in (2.0, 3.0):
        assert np.mean(np.array(zs) > t) <= 2 * math.exp(-(t**2) / 2)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_each_rounding_convention_of_the_scale_passes_and_a_third_of_a_unit_fails(dtype):
    case = fixture(dtype, in_channels=64, out_channels=64, length=512)
    fmt = "bfloat16" if dtype == "bfloat16" else "float16"
    for name in ("output", "grad_input", "grad_weight"):
        scale = case.metadata["scales"][name]
        unscaled = exact(case)[name] / scale
        rounded_scale = float(to_format(np.array([scale]), fmt)[0])
        held = to_format(unscaled, fmt)
        conventions = {
            "once": scale * unscaled,
            "scale rounded first": rounded_scale * unscaled,
            "sum rounded, float32 scale": float(np.float32(scale)) * held,
            "both rounded (upstream's backward)": rounded_scale * held,
        }
        for label, value in conventions.items():
            report = verdict.judge_array(case, name, stored(case, value), verdict.rule_for(dtype))
            assert report.passed, f"{name}, {label}: {report.summary()}"
        # A scale error a quarter of a unit beyond every convention's.
        beyond = max(case.scale_centres(name)) + 2.0 ** -verdict.rule_for(dtype).bits / 4
        wrong = stored(case, scale * unscaled * (1 + beyond))
        assert not verdict.judge_array(case, name, wrong, verdict.rule_for(dtype)).bias.passed


# -- reports, options, pictures --------------------------------------------------------------


def test_skip_switches_a_check_off_by_name():
    case = fixture("float32")
    results = {"output": stored(case, exact(case)["output"] * (1 + 1e-6))}
    assert verdict.judge(case, results).arrays[0].failed_checks == ["bias"]
    assert verdict.judge(case, results, skip="bias").passed


def test_a_narrow_running_sum_passes_only_when_declared():
    case = fixture("float16", in_channels=128, out_channels=64)
    from calibration import MUTANTS

    narrow = next(m for m in MUTANTS if m.name == "running sums in the storage format")
    results = narrow.make(case, {})
    assert not verdict.judge(case, results).passed
    assert verdict.judge(case, results, accumulate="float16").passed


def test_a_report_states_the_precision_beside_a_correct_evaluations():
    case = fixture("float32")
    x, w, g = (to_format(case.inputs[k], "tf32") for k in ("input", "weight", "grad_output"))
    tf32 = CORRECT["uscale_ref"](case, x, w, g)
    judged = verdict.judge(case, tf32, reference=True)
    text = judged.describe()
    assert "precision" in text and "a correct evaluation reaches" in text
    assert "at least 21 required (float32 has 24" in text
    assert verdict.judge(case, tf32, "tf32").passed


def test_the_picture_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    case = fixture("float32")
    results = {k: stored(case, v) for k, v in exact(case).items() if v is not None}
    results["output"][:, 3] *= np.float32(1.001)
    judged = verdict.judge(case, results, reference=True)
    path = judged.plot(tmp_path / "case.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
