"""Golden fixtures: reproducible, more accurate than their dtype, and guarded against bad files."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import oracles
import pytest

import uscale_ref
from uscale_ref import golden
from uscale_ref.cli import main
from uscale_ref.exact import doubledouble as exact
from uscale_ref.golden import fixture, inputs

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _tree_digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


# -- the committed suite ------------------------------------------------------


def test_committed_suite_regenerates_byte_for_byte(capsys):
    before = _tree_digest(GOLDEN)
    assert main(["golden", "verify", str(GOLDEN)]) == 0
    assert "byte for byte" in capsys.readouterr().out
    assert _tree_digest(GOLDEN) == before  # verify never writes


def test_committed_suite_covers_the_axes():
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    entries = manifest["cases"]
    assert len(entries) >= 150
    assert sum(p.stat().st_size for p in GOLDEN.iterdir()) < 10 * 2**20
    ids = [e["id"] for e in entries]
    assert ids == golden.cases()
    args = [e["arguments"] for e in entries]
    assert {e["dtype"] for e in entries} == set(golden.suite.DTYPES)
    assert {
        a["padding"] if isinstance(a["padding"], str) else type(a["padding"]).__name__ for a in args
    } == {"int", "list", "valid", "same"}
    assert {a["constraint"] for a in args} == {
        None,
        "gmean",
        "hmean",
        "amean",
        "to_output_scale",
        "to_grad_input_scale",
    }
    assert any(a["groups"] > 1 and a["dilation"] != 1 for a in args)
    assert any(e["shapes"]["output"][-1] == 1 for e in entries)
    assert any(len(e["shapes"]["input"]) == 2 for e in entries)
    assert any("bias" not in e["shapes"] for e in entries)
    assert any(a["stride"] if isinstance(a["stride"], int) else 0 for a in args)
    assert "c128_g2_s2_d2_p1_k4" in ids


@pytest.mark.parametrize("case_id", golden.cases())
def test_uscale_ref_matches_every_golden(case_id):
    case = golden.load(case_id)
    values = case.inputs
    output = uscale_ref.conv1d(values["input"], values["weight"], values["bias"], **case.kwargs)
    grads = uscale_ref.conv1d_backward(
        values["grad_output"], values["input"], values["weight"], values["bias"], **case.kwargs
    )
    golden.assert_matches(case, output=output, **grads._asdict())


# -- accuracy of the expected values -----------------------------------------


def _exact_fraction_results(case):
    """Exact rational results of a small case, from the loop definitions with Fractions."""
    spec = golden.store.spec_for(case.id)
    values = case.inputs
    batched = spec.batch_size is not None

    def frac(a):
        a = a if batched or a is None or a.ndim != 2 else a[None]
        if a is None:
            return None
        if np.iscomplexobj(a):
            return np.vectorize(
                lambda z: (Fraction(float(z.real)), Fraction(float(z.imag))), otypes=[object]
            )(a)
        return np.vectorize(lambda v: (Fraction(float(v)), Fraction(0)), otypes=[object])(a)

    def mul(a, b):
        return (a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0])

    def conj(a):
        return (a[0], -a[1])

    x, w, g = frac(values["input"]), frac(values["weight"]), frac(values["grad_output"])
    b = frac(values["bias"])
    geo = oracles.Geometry.resolve(
        spec.kernel_size, spec.stride, spec.padding, spec.dilation, spec.groups
    )
    scales = uscale_ref.conv1d_scales(spec.input_shape, spec.weight_shape, **spec.conv_kwargs)
    n_batch, _, length = x.shape
    n_out, fan_in, kernel = w.shape
    out_g = n_out // geo.groups
    out_len = g.shape[-1]
    zero = (Fraction(0), Fraction(0))

    def zeros(shape):
        a = np.empty(shape, dtype=object)
        for index in np.ndindex(shape):
            a[index] = zero
        return a

    y, gx, gw = zeros((n_batch, n_out, out_len)), zeros(x.shape), zeros(w.shape)
    for n, o, pos in np.ndindex(n_batch, n_out, out_len):
        total = zero if b is None else b[o]
        for i, k in np.ndindex(fan_in, kernel):
            t = pos * geo.stride + k * geo.dilation - geo.pad_left
            if 0 <= t < length:
                c = (o // out_g) * fan_in + i
                p = mul(w[o, i, k], x[n, c, t])
                total = (total[0] + p[0], total[1] + p[1])
                q = mul(conj(w[o, i, k]), g[n, o, pos])
                gx[n, c, t] = (gx[n, c, t][0] + q[0], gx[n, c, t][1] + q[1])
                r = mul(g[n, o, pos], conj(x[n, c, t]))
                gw[o, i, k] = (gw[o, i, k][0] + r[0], gw[o, i, k][1] + r[1])
        y[n, o, pos] = total

    def scaled(a, s):
        s = Fraction(s)
        return np.vectorize(lambda v: (v[0] * s, v[1] * s), otypes=[object])(a)

    result = {
        "output": scaled(y, scales.output),
        "grad_input": scaled(gx, scales.grad_input),
        "grad_weight": scaled(gw, scales.grad_weight),
    }
    if not batched:
        result = {k: (v[0] if k in ("output", "grad_input") else v) for k, v in result.items()}
    return result


def _ulps_from_exact(value, exact_fraction, dtype):
    """|value - exact| in ulps of value's dtype at the exact value (real or imaginary part)."""
    finfo = np.finfo(dtype)
    value_f = Fraction(float(value))
    magnitude = abs(exact_fraction)
    if magnitude == 0:
        return 0.0 if value_f == 0 else float("inf")
    exponent = max(int(np.floor(np.log2(float(magnitude)))), finfo.minexp)
    ulp = Fraction(2) ** (exponent - finfo.nmant)
    return float(abs(value_f - exact_fraction) / ulp)


@pytest.mark.parametrize(
    "case_id",
    [
        "f64_g2_s2_d2_p1_k4",
        "c128_same_k4",
        "f64_ub_s2_d2_k3",
        "f32_d3_same_k4",
        "f16_k3",
        "c64_o4_dw_p1_k3",
        "c128_k3_none",
    ],
)
def test_expected_values_against_exact_rational_arithmetic(case_id):
    """float64/complex128 expectations are within 1 ulp of exact; the others are correctly
    rounded (within half an ulp) from the exact value."""
    case = golden.load(case_id)
    exact_results = _exact_fraction_results(case)
    dtype = np.dtype(case.dtype)
    part = np.finfo(dtype).dtype
    limit = 1.0 if part == np.float64 else 0.5
    worst = 0.0
    for name, exact_values in exact_results.items():
        got = case.expected[name]
        for index in np.ndindex(got.shape):
            re, im = exact_values[index]
            worst = max(worst, _ulps_from_exact(got[index].real, re, part))
            if dtype.kind == "c":
                worst = max(worst, _ulps_from_exact(got[index].imag, im, part))
    assert worst <= limit, worst


# -- the arithmetic pieces ----------------------------------------------------


def test_error_free_transformations_are_exact():
    rng = np.random.default_rng(5)
    a = rng.standard_normal(200) * 10.0 ** rng.integers(-8, 8, 200)
    b = rng.standard_normal(200) * 10.0 ** rng.integers(-8, 8, 200)
    s, e = exact.two_sum(a, b)
    p, f = exact.two_prod(a, b)
    for i in range(200):
        assert Fraction(s[i]) + Fraction(e[i]) == Fraction(a[i]) + Fraction(b[i])
        assert Fraction(p[i]) + Fraction(f[i]) == Fraction(a[i]) * Fraction(b[i])


def test_rounding_from_double_double_handles_midpoints():
    # 1 + 2**-11 lies exactly half-way between two float16 numbers; a positive
    # lo must round up, a negative lo down, a zero lo to even (1.0).
    hi = np.array([1 + 2.0**-11] * 3)
    lo = np.array([2.0**-60, -(2.0**-60), 0.0])
    got = exact.round_to(exact.DD(hi, lo), np.dtype(np.float16))
    assert got.tolist() == [1 + 2.0**-10, 1.0, 1.0]
    hi32 = np.array([1 + 2.0**-24, -(1 + 2.0**-24)])
    lo32 = np.array([2.0**-70, -(2.0**-70)])
    got32 = exact.round_to(exact.DD(hi32, lo32), np.dtype(np.float32))
    assert got32.tolist() == [1 + 2.0**-23, -(1 + 2.0**-23)]


def test_splitmix64_reference_values():
    # First outputs of SplitMix64 seeded with 0 (Vigna's reference implementation).
    assert [int(v) for v in inputs.splitmix64(0, 2)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_inputs_have_unit_variance():
    values = inputs.standard_values(123, 200_000)
    assert abs(values.mean()) < 0.01
    assert abs(values.var() - 1.0) < 0.01
    z = inputs.draw("x", "input", (100_000,), np.dtype(np.complex64))
    assert abs(np.mean(np.abs(z) ** 2) - 1.0) < 0.01


def test_generate_is_reproducible(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    golden.generate(first, dtypes=["complex64"], pattern="*g2*", progress=None)
    assert (
        main(
            ["golden", "generate", "--out", str(second), "--dtype", "complex64", "--filter", "*g2*"]
        )
        == 0
    )
    assert _tree_digest(first) == _tree_digest(second)
    assert golden.verify(second) == []


def test_large_suite_generates_and_uscale_ref_matches_it(tmp_path):
    """The larger shapes run the kernels' fast paths (band matrices, im2col) on long rows."""
    ids = golden.generate(tmp_path, suite="large", dtypes=["float32", "complex64"], progress=None)
    assert len(ids) == 2 * len(golden.suite.SUITES["large"])
    assert golden.verify(tmp_path) == []
    for case_id in ids:
        case = golden.load(case_id, tmp_path)
        x, w, b, g = (case.inputs.get(k) for k in ("input", "weight", "bias", "grad_output"))
        output = uscale_ref.conv1d(x, w, b, **case.kwargs)
        grads = uscale_ref.conv1d_backward(g, x, w, b, **case.kwargs)
        golden.assert_matches(case, output=output, **grads._asdict())


# -- bad files ------------------------------------------------------------------


@pytest.fixture
def golden_copy(tmp_path):
    target = tmp_path / "golden"
    target.mkdir()
    golden.generate(target, dtypes=["float32"], pattern="f32_g2_k3", progress=None)
    return target


def test_tampered_file_is_reported(golden_copy):
    path = golden_copy / "f32_g2_k3.npz"
    data = bytearray(path.read_bytes())
    data[-200] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(golden.GoldenFileError, match=r"f32_g2_k3.npz: sha256 differs"):
        golden.load("f32_g2_k3", golden_copy)
    problems = golden.verify(golden_copy)
    assert any("sha256 differs" in p for p in problems)
    assert any("differs from what the generator produces" in p for p in problems)


def test_truncated_file_is_a_clear_error(golden_copy):
    path = golden_copy / "f32_g2_k3.npz"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(golden.GoldenFileError, match=r"f32_g2_k3.npz: not a readable .npz archive"):
        golden.read(path)


def test_pickled_object_array_is_never_loaded(golden_copy, tmp_path):
    evil = tmp_path / "f32_g2_k3.npz"
    np.savez(evil, metadata=np.array([{"boom": 1}], dtype=object))
    with pytest.raises(golden.GoldenFileError, match=r"holds Python objects \(pickled data\)"):
        golden.read(evil)


def test_missing_array_and_bad_metadata(tmp_path):
    arrays, metadata = fixture.build(golden.store.spec_for("f64_k3"))
    del arrays["grad_weight"]
    path = tmp_path / "f64_k3.npz"
    path.write_bytes(fixture.to_bytes(arrays, metadata))
    with pytest.raises(golden.GoldenFileError, match=r"missing array 'grad_weight'"):
        golden.read(path)
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        archive.writestr("metadata.npy", b"not an npy file")
    with pytest.raises(golden.GoldenFileError, match=r"bad.npz"):
        golden.read(tmp_path / "bad.npz")


def test_manifest_problems(golden_copy):
    (golden_copy / "stray.npz").write_bytes(b"")
    assert any("stray.npz: not listed" in p for p in golden.verify(golden_copy))
    (golden_copy / "manifest.json").write_text("{not json")
    assert any("unreadable manifest" in p for p in golden.verify(golden_copy))
    (golden_copy / "manifest.json").unlink()
    with pytest.raises(golden.GoldenFileError, match=r"no manifest"):
        golden.load("f32_g2_k3", golden_copy)


def test_unknown_case_id(golden_copy):
    with pytest.raises(ValueError, match=r"unknown golden case id 'f32_nope'"):
        golden.load("f32_nope", golden_copy)


# -- judging results -----------------------------------------------------------


def test_assert_matches_names_array_and_element():
    case = golden.load("f32_s2_p1_k3")
    output = case.expected["output"].copy()
    output[1, 2, 3] += 1e-3
    with pytest.raises(AssertionError, match=r"f32_s2_p1_k3: output\[1, 2, 3\] = .* units of"):
        golden.assert_matches(case, output=output)
    with pytest.raises(TypeError, match=r"dtype float64, expected float32"):
        golden.assert_matches(case, output=output.astype(np.float64))
    with pytest.raises(ValueError, match=r"shape"):
        golden.assert_matches(case, grad_input=output)
    golden.assert_matches(case, output=case.expected["output"])


def test_nonzero_where_exactly_zero_fails():
    """With stride 5 > K = 2, some inputs get no gradient: exactly zero is required there."""
    case = golden.load("f64_s5_k2")
    scale = case.error_scale("grad_input")
    assert np.any(scale == 0)
    grad_input = case.expected["grad_input"].copy()
    grad_input[scale == 0] = 1e-300
    with pytest.raises(AssertionError, match=r"grad_input"):
        golden.assert_matches(case, grad_input=grad_input)


def _write_results(directory, case_id, **arrays):
    directory.mkdir(exist_ok=True)
    np.savez(directory / f"{case_id}.npz", **arrays)


def test_check_command(tmp_path, capsys):
    results = tmp_path / "results"
    good = golden.load("c64_g2_k3")
    _write_results(
        results,
        "c64_g2_k3",
        output=good.expected["output"],
        grad_weight=good.expected["grad_weight"],
    )
    before = _tree_digest(GOLDEN)
    # Results for one case of the suite: a failure unless a partial check is asked for.
    assert main(["golden", "check", str(results)]) == 1
    captured = capsys.readouterr()
    count = len(golden.cases())
    assert f"{count - 1} of {count} cases have no results: " in captured.err
    assert "--partial" in captured.err
    assert main(["golden", "check", str(results), "--partial"]) == 0
    out = capsys.readouterr().out
    assert "c64_g2_k3" in out and "grad_weight" in out and "2 passed, 0 failed" in out

    bad = good.expected["grad_input"] * np.complex64(1.01)
    _write_results(results, "c64_g2_k3", grad_input=bad)
    assert main(["golden", "check", str(results), "--partial"]) == 1
    assert "FAIL" in capsys.readouterr().out

    _write_results(results, "c64_g2_k3", output=good.expected["output"][..., :-1])
    _write_results(results, "no_such_case", output=good.expected["output"])
    assert main(["golden", "check", str(results)]) == 1
    err = capsys.readouterr().err
    assert "unknown golden case id 'no_such_case'" in err
    assert "shape" in err
    assert _tree_digest(GOLDEN) == before


def test_check_rejects_unknown_arrays_and_pickles(tmp_path, capsys):
    results = tmp_path / "results"
    _write_results(results, "c64_g2_k3", logits=np.zeros(3))
    assert main(["golden", "check", str(results)]) == 1
    assert "expected some of" in capsys.readouterr().err
    np.savez(results / "c64_g2_k3.npz", output=np.array([{"x": 1}], dtype=object))
    assert main(["golden", "check", str(results)]) == 1
    assert "holds Python objects (pickled data); refused" in capsys.readouterr().err


def test_copy_of_suite_verifies(tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(GOLDEN, target)
    assert golden.verify(target) == []


def test_default_dir_choices(monkeypatch, tmp_path):
    monkeypatch.setenv("USCALE_REF_GOLDEN_DIR", str(tmp_path))
    assert golden.default_dir() == tmp_path
    monkeypatch.delenv("USCALE_REF_GOLDEN_DIR")
    assert golden.default_dir() == GOLDEN
