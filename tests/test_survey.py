"""Frameworks' conv1d judged by uscale_ref: the adapters and the survey.

The survey's machinery is held with stand-in adapters built on uscale_ref itself (a
correct one, one with a wrong scale, one that refuses complex dtypes, one not
installed); the real adapters run where their framework is installed (PyTorch and JAX
in CI), on the committed cases, where a correct framework must pass and the known
findings must show.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import uscale_ref
from uscale_ref.cli import main
from uscale_ref.survey import ADAPTERS, Adapter, adapter, draw, missing, survey
from uscale_ref.survey import adapters as adapters_module
from uscale_ref.survey import run as run_module
from uscale_ref.testing import assert_conv1d

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None
HAS_ML_DTYPES = importlib.util.find_spec("ml_dtypes") is not None


def _ours(scale: float = 1.0, refuse_complex: bool = False):
    def forward(x, w, b, **kwargs):
        if refuse_complex and np.iscomplexobj(x):
            raise TypeError("no complex here")
        y = uscale_ref.conv1d(x, w, b, **kwargs)
        return (y.astype(np.float64) * scale).astype(y.dtype) if scale != 1 else y

    def backward(g, x, w, b, **kwargs):
        if refuse_complex and np.iscomplexobj(x):
            raise TypeError("no complex here")
        return uscale_ref.conv1d_backward(g, x, w, b, **kwargs)

    return forward, backward


@pytest.fixture
def stand_ins(monkeypatch):
    """Four adapters on uscale_ref itself, in place of the real ones."""
    fake = {
        "right": Adapter("right", "numpy", "uscale_ref", ("float32", "complex64"), _ours),
        "off": Adapter("off", "numpy", "scale off by 1e-3", ("float32",),
                       lambda: _ours(scale=1 + 1e-3)),
        "real-only": Adapter("real-only", "numpy", "refuses complex", ("float32", "complex64"),
                             lambda: _ours(refuse_complex=True)),
        "absent": Adapter("absent", "no_such_framework_here", "not installed", ("float32",),
                          _ours),
    }  # fmt: skip
    monkeypatch.setattr(adapters_module, "ADAPTERS", fake)
    monkeypatch.setattr(run_module, "ADAPTERS", fake)
    return fake


def _rows(result, name):
    return {(r.dtype, r.direction): r for r in result.rows if r.adapter == name}


def test_a_correct_adapter_passes_and_a_wrong_one_fails_with_its_cause(stand_ins):
    result = survey(["right", "off"], dtypes=["float32"])
    right, off = _rows(result, "right"), _rows(result, "off")
    assert {r.verdict for r in right.values()} == {"pass"}
    assert right["float32", "forward"].cases == len(uscale_ref.golden.cases(dtype="float32")) - 6
    assert right["float32", "forward"].bits > 20
    assert off["float32", "forward"].verdict == "fail"
    (cause,) = off["float32", "forward"].causes
    assert "a scale off by a factor 1 + 1.0e-03" in cause
    assert off["float32", "backward"].verdict == "pass"


def test_refused_dtypes_and_missing_frameworks_are_not_failures(stand_ins):
    result = survey(["real-only", "absent"], dtypes=["float32", "complex64"])
    real_only, absent = _rows(result, "real-only"), _rows(result, "absent")
    assert real_only["float32", "forward"].verdict == "pass"
    assert real_only["complex64", "backward"].verdict == "unsupported"
    assert "TypeError: no complex here" in real_only["complex64", "backward"].note
    assert {r.verdict for r in absent.values()} == {"not installed"}
    assert "no_such_framework_here is not installed" in absent["float32", "forward"].note
    assert "FAIL" not in result.table()


def test_the_table_names_the_machine_and_the_json_holds_every_row(stand_ins):
    result = survey(["right", "off"], dtypes=["float32"])
    text = result.table()
    assert "processor:" in text and "numpy:" in text and "uscale_ref:" in text
    assert "FAIL 37/37" in text and "[37] output: a scale off by a factor 1 + 1.0e-03" in text
    data = json.loads(result.to_json())
    assert len(data["rows"]) == 4 and data["plan"] == "small"
    assert {row["verdict"] for row in data["rows"]} == {"pass", "fail"}


def test_survey_arguments_are_checked():
    with pytest.raises(ValueError, match="frameworks: 'pytorch' is not one of"):
        survey(["pytorch"])
    with pytest.raises(ValueError, match="dtypes: 'complex32'"):
        survey(["torch"], dtypes=["complex32"])
    with pytest.raises(ValueError, match="plan must be one of"):
        survey(["torch"], plan="huge")
    with pytest.raises(ValueError, match="adapter must be one of"):
        adapter("pytorch")


def test_every_adapter_says_whether_it_can_run():
    for chosen in ADAPTERS.values():
        reason = missing(chosen)
        if importlib.util.find_spec(chosen.module) is None:
            assert reason is not None and "pip install" in reason
            with pytest.raises(ImportError, match="not installed"):
                chosen.kernels()
            assert chosen.version() == "not installed"


def test_the_command_prints_the_table_and_writes_json(stand_ins, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s.json"
    code = main(["survey", "--dtypes", "float32", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "framework" in printed and "written:" in printed
    assert {row["adapter"] for row in json.loads(out.read_text())["rows"]} == set(stand_ins)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_the_survey_is_drawn(stand_ins, tmp_path):
    result = survey(["right", "off", "absent"], dtypes=["float32"])
    path = draw(result, tmp_path / "survey.png")
    assert path.stat().st_size > 1000


# -- the real adapters, where their framework is installed -------------------------------------


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
@pytest.mark.parametrize("name", ["torch", "torch-channels-last", "torch-no-onednn"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64"])
def test_torch_adapters_pass_the_committed_cases(name, dtype):
    forward, backward = adapter(name).kernels()
    report = assert_conv1d(forward, backward, dtypes=dtype, drawn=0)
    assert report.cases > 30


@pytest.mark.skipif(not (HAS_TORCH and HAS_ML_DTYPES), reason="needs torch and ml_dtypes")
def test_torch_without_onednn_sums_its_taps_in_bfloat16():
    result = survey(["torch", "torch-no-onednn"], dtypes=["bfloat16"])
    assert _rows(result, "torch")["bfloat16", "backward"].verdict == "pass"
    no_onednn = _rows(result, "torch-no-onednn")["bfloat16", "backward"]
    assert no_onednn.verdict == "fail"
    assert any("bfloat16" in cause for cause in no_onednn.causes)


JAX_RUNS = [("jax", "float32"), ("jax", "float64"), ("jax", "complex64"),
            ("jax-highest", "float32")]  # fmt: skip


@pytest.mark.skipif(not HAS_JAX, reason="needs jax")
@pytest.mark.parametrize(("name", "dtype"), JAX_RUNS)
def test_jax_adapters_pass_the_committed_cases(name, dtype):
    forward, backward = adapter(name).kernels()
    report = assert_conv1d(forward, backward, dtypes=dtype, drawn=0)
    assert report.cases > 30


@pytest.mark.skipif(not (HAS_JAX and HAS_ML_DTYPES), reason="needs jax and ml_dtypes")
def test_jax_sums_the_bias_gradient_in_the_narrow_dtype():
    result = survey(["jax"], dtypes=["bfloat16", "float16"])
    for dtype in ("bfloat16", "float16"):
        assert _rows(result, "jax")[dtype, "forward"].verdict == "pass"
        backward = _rows(result, "jax")[dtype, "backward"]
        assert backward.verdict == "fail"
        top = next(iter(backward.causes))
        assert f"grad_bias: summed in {dtype}" in top
