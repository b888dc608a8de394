"""The TF32 tolerance: a correct TF32 kernel passes, real bugs fail, exact refuses TF32."""

from __future__ import annotations

import numpy as np
import pytest

import uscale_ref
from uscale_ref import golden
from uscale_ref.formats import round_to
from uscale_ref.geometry import conv1d_geometry

CASES = golden.cases(dtype=["float32", "complex64"])


def _tf32(a, rounding):
    """Each real part rounded to TF32 (what a tensor core reads), kept in the dtype."""
    if np.iscomplexobj(a):
        return (_tf32(a.real.copy(), rounding) + 1j * _tf32(a.imag.copy(), rounding)).astype(
            a.dtype
        )
    return round_to(a, "tf32", rounding)


def _run(case, x, w, b, g, **changes):
    """uscale_ref in float64/complex128 on the given arrays, rounded once to the case dtype."""
    wide = np.complex128 if case.dtype == "complex64" else np.float64
    kwargs = {**case.kwargs, **changes}
    x, w, g = (a.astype(wide) for a in (x, w, g))
    b = None if b is None else b.astype(wide)
    y = uscale_ref.conv1d(x, w, b, **kwargs)
    grads = uscale_ref.conv1d_backward(g, x, w, b, **kwargs)
    results = {"output": y, **grads._asdict()}
    return {k: v.astype(case.dtype) for k, v in results.items() if v is not None}


def tf32_kernel(case, rounding="nearest"):
    """A correct TF32 kernel: multiplicands rounded to TF32, products exact, float32 sums."""
    inputs = case.inputs
    x, w, g = (_tf32(inputs[n], rounding) for n in ("input", "weight", "grad_output"))
    return _run(case, x, w, inputs["bias"], g)


def _failed(case, results, precision):
    return [r.name for r in golden.compare(case, precision, **results) if not r.passed]


@pytest.mark.parametrize("rounding", ["nearest", "toward_zero"])
@pytest.mark.parametrize("case_id", CASES)
def test_a_correct_tf32_kernel_passes_tf32_and_fails_exact(case_id, rounding):
    case = golden.load(case_id)
    results = tf32_kernel(case, rounding)
    assert _failed(case, results, "tf32") == []
    if case.formats:  # FP8 values are TF32 values: a TF32 kernel is exact on them
        assert _failed(case, results, "exact") == []
    else:
        assert "output" in _failed(case, results, "exact")


def _bugs(case):
    """The classic mistakes that apply to this case: name -> results."""
    x, w, b, g = (case.inputs[n] for n in ("input", "weight", "bias", "grad_output"))
    bugs = {}
    if w.shape[-1] > 1:
        bugs["flipped kernel"] = _run(case, x, np.flip(w, axis=-1).copy(), b, g)
    scale = uscale_ref.conv1d_scales(x.shape, w.shape, **case.kwargs).output
    if b is not None and scale != 1.0:  # alpha * conv + b instead of alpha * (conv + b)
        output = _run(case, x, w, None, g)["output"] + b[:, None]
        bugs["bias after the scale"] = {"output": output.astype(case.dtype)}
    if case.dtype == "complex64":
        results = _run(case, x, np.conj(w), b, g)
        bugs["missing conjugate in dgrad"] = {"grad_input": results["grad_input"]}
    kwargs = case.kwargs
    geometry = conv1d_geometry(
        x.shape, w.shape, **{k: kwargs[k] for k in ("stride", "padding", "dilation", "groups")}
    )
    if geometry.pad_left != geometry.pad_right:
        swapped = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(geometry.pad_right, geometry.pad_left)])
        results = _run(case, swapped, w, b, g, padding=0)
        bugs["padding on the wrong side"] = {"output": results["output"]}
    return bugs


@pytest.mark.parametrize("case_id", CASES)
def test_real_bugs_still_fail_under_tf32(case_id):
    case = golden.load(case_id)
    for name, results in _bugs(case).items():
        assert _failed(case, results, "tf32"), f"{name} passed the tf32 tolerance"


def test_tf32_is_refused_for_other_dtypes():
    case = golden.load(golden.cases(dtype="float64")[0])
    with pytest.raises(ValueError, match="precision 'tf32' applies to float32 and complex64"):
        golden.assert_matches(case, precision="tf32", output=case.expected["output"])
    with pytest.raises(ValueError, match="precision must be one of"):
        golden.assert_matches(case, precision="bf16", output=case.expected["output"])


def test_cli_check_with_tf32(tmp_path, capsys):
    from uscale_ref.cli import main

    case_id = golden.cases(dtype="float32")[0]
    np.savez(tmp_path / f"{case_id}.npz", **tf32_kernel(golden.load(case_id)))
    assert main(["golden", "check", str(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["golden", "check", str(tmp_path), "--precision", "tf32", "--partial"]) == 0
    assert "0 failed" in capsys.readouterr().out
