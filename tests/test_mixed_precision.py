"""Mixed-precision cases: operands in formats of their own (FP8, bfloat16, float16), results
in another (bfloat16, float16 or float32), as unit scaling trains in FP8."""

from __future__ import annotations

import json

import numpy as np
import pytest

import uscale_ref
from uscale_ref import golden
from uscale_ref.formats import from_bits, round_to, spacing
from uscale_ref.golden import CaseSpec
from uscale_ref.golden.caselist import parse_case
from uscale_ref.golden.fixture import read, to_bytes
from uscale_ref.testing import assert_conv1d

RECIPE = {"input_format": "float8_e4m3fn", "weight_format": "float8_e4m3fn",
          "grad_output_format": "float8_e5m2"}  # fmt: skip


def test_the_case_string_names_each_operands_format():
    text = ("dtype=bfloat16,input=float8_e4m3fn,weight=float8_e4m3fn,grad_output=float8_e5m2,"
            "N=8,C=256,L=4096,O=256,K=9,padding=same")  # fmt: skip
    spec = parse_case(text)
    assert spec == CaseSpec("bfloat16", kernel_size=9, batch_size=8, in_channels=256,
                            out_channels=256, length=4096, padding="same", **RECIPE)  # fmt: skip
    assert spec.id == "bf16_xe4m3_we4m3_ge5m2_n8c256o256l4096_same_k9"
    assert spec.formats == {"input": "float8_e4m3fn", "weight": "float8_e4m3fn",
                            "grad_output": "float8_e5m2"}  # fmt: skip
    # fp8=true is the same recipe with float32 results: one case, one id.
    assert CaseSpec("float32", fp8=True) == CaseSpec("float32", **RECIPE)
    assert CaseSpec("float32", **RECIPE).id == "f32_fp8_k3"


@pytest.mark.parametrize(
    "text, words",
    [("dtype=float64,input=float8_e5m2", "results in one of"),
     ("input=float8", "input must be one of"),
     ("dtype=complex64,weight=bfloat16", "results in one of"),
     ("fp8=true,input=unit_scaling_e4m3", "give one or the other")],
)  # fmt: skip
def test_impossible_mixtures_are_refused_by_name(text, words):
    with pytest.raises(ValueError, match=words):
        parse_case(text)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed")
    specs = [
        CaseSpec("bfloat16", kernel_size=3, batch_size=2, in_channels=16, out_channels=8,
                 length=64, padding=1, **RECIPE),
        CaseSpec("float16", kernel_size=4, batch_size=2, in_channels=8, out_channels=8,
                 length=50, padding="same", groups=2, input_format="unit_scaling_e4m3",
                 weight_format="unit_scaling_e4m3", grad_output_format="unit_scaling_e5m2"),
        CaseSpec("float32", kernel_size=3, in_channels=8, out_channels=8, length=40,
                 input_format="bfloat16", weight_format="bfloat16",
                 grad_output_format="bfloat16"),
    ]  # fmt: skip
    golden.generate(out, specs=specs, progress=None)
    return out, specs


def test_operands_are_stored_in_their_own_format(folder):
    out, specs = folder
    for spec in specs:
        case = golden.load(spec.id, out)
        assert case.metadata["format_version"] == 3 and case.formats == spec.formats
        for name, format in spec.formats.items():
            stored, values = case.arrays[name], case.input(name)
            assert values.dtype == np.float32
            if format.startswith(("float8", "unit_scaling")):
                assert stored.dtype == np.uint8
                np.testing.assert_array_equal(from_bits(stored, format), values)
            # Every value lies in the format, and the draw used it.
            np.testing.assert_array_equal(round_to(values, format), values)
        assert case.arrays["output"].dtype == np.dtype(case.storage_dtype)
    assert golden.verify(out) == []


def test_expected_results_are_the_exact_ones_rounded_once(folder):
    out, specs = folder
    for spec in specs:
        case = golden.load(spec.id, out)
        x, w, b = (None if a is None else a.astype(np.float64)
                   for a in (case.input(k) for k in ("input", "weight", "bias")))  # fmt: skip
        y = np.asarray(uscale_ref.conv1d(x, w, b, **case.kwargs))  # near exact in float64
        expected = case.expected["output"].astype(np.float64)
        fmt = {"bfloat16": "bfloat16", "float16": "float16", "float32": "float32"}[spec.dtype]
        # Rounded once: within half a unit of the format (plus float64's own error).
        half = spacing(y, fmt) / 2 if fmt != "float32" else np.abs(y) * 2.0**-24
        assert np.all(np.abs(expected - y) <= half * (1 + 1e-9) + 1e-300), spec.id


def test_a_correct_kernel_passes_and_float32_results_are_refused(folder):
    pytest.importorskip("ml_dtypes")
    out, specs = folder
    spec = specs[0]  # bfloat16 results from FP8 operands

    def forward(x, w, b, **kwargs):
        import ml_dtypes

        wide = [None if a is None else np.asarray(a, dtype=np.float64) for a in (x, w, b)]
        return np.asarray(uscale_ref.conv1d(*wide, **kwargs)).astype(ml_dtypes.bfloat16)

    def backward(g, x, w, b, **kwargs):
        import ml_dtypes

        wide = [None if a is None else np.asarray(a, dtype=np.float64) for a in (g, x, w, b)]
        grads = uscale_ref.conv1d_backward(*wide, **kwargs)
        return tuple(np.asarray(a).astype(ml_dtypes.bfloat16) for a in grads)

    report = assert_conv1d(forward, backward, golden_dir=out, cases=[spec.id], drawn=0)
    assert report.cases == 1
    with pytest.raises(AssertionError, match="has dtype float32, expected bfloat16"):
        shape = golden.load(spec.id, out).result_shape("output")
        assert_conv1d(lambda x, w, b, **k: np.zeros(shape, np.float32), golden_dir=out,
                      cases=[spec.id], drawn=0)  # fmt: skip


def test_a_version_2_fp8_fixture_with_float32_operands_still_reads(tmp_path):
    case = golden.load("f32_fp8_k3")
    metadata = json.loads(json.dumps(case.metadata))
    metadata["format_version"] = 2
    arrays = {**case.arrays, **{k: case.input(k) for k in ("input", "weight", "grad_output")}}
    path = tmp_path / "old.npz"
    path.write_bytes(to_bytes(arrays, metadata))
    old = read(path)
    for name in ("input", "weight", "grad_output"):
        np.testing.assert_array_equal(old.input(name), case.input(name))
