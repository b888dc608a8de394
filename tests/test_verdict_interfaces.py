"""One report, every way in: the runner, golden check and the plugin say the same, and draw it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from calibration import stored

import uscale_ref
from uscale_ref import golden, verdict
from uscale_ref.cli import main
from uscale_ref.testing import assert_conv1d

CASE = "f32_n3c8o8l40_g2_p3_k7"


def _scaled_output(case, factor):
    x, w, b, _ = (case.inputs[n] for n in ("input", "weight", "bias", "grad_output"))
    wide = uscale_ref.conv1d(*(None if a is None else a.astype(np.float64) for a in (x, w, b)),
                             **case.kwargs)  # fmt: skip
    return stored(case, wide * factor)


def _forward_off_by(factor):
    def forward(x, w, b, **kwargs):
        y = uscale_ref.conv1d(x.astype(np.float64), w.astype(np.float64),
                              None if b is None else b.astype(np.float64), **kwargs)  # fmt: skip
        return (y * factor).astype(x.dtype)

    return forward


def test_golden_check_prints_what_assert_conv1d_says(tmp_path, capsys):
    case = golden.load(CASE)
    np.savez(tmp_path / f"{CASE}.npz", output=_scaled_output(case, 1 + 3e-5))
    assert main(["golden", "check", str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(_forward_off_by(1 + 3e-5), filter=CASE, dtypes="float32", drawn=0)
    for line in str(failure.value).splitlines()[1:4]:
        if line.startswith(CASE) or "likely cause" in line:
            assert line.strip() in printed
    assert "errors biased along the expected values, by +3e-05 of them" in printed
    assert "likely cause: output: a scale off by a factor 1 + 3.0e-05" in printed


def test_golden_check_options(tmp_path, capsys):
    case = golden.load(CASE)
    np.savez(tmp_path / f"{CASE}.npz", output=_scaled_output(case, 1 + 1e-6))  # a bias only
    assert main(["golden", "check", str(tmp_path), "--skip", "bias", "--partial"]) == 0
    assert main(["golden", "check", str(tmp_path), "--partial"]) == 1
    assert "check: 0 passed, 1 failed" in capsys.readouterr().out
    # A kernel that sums in float16 may evaluate its scale in float16 too: the same bias passes.
    assert main(["golden", "check", str(tmp_path), "--accumulate", "float16", "--partial"]) == 0
    for argv, message in [
        (["--skip", "bonds"], "invalid choice: 'bonds'"),
        (["--accumulate", "tf32"], "accumulate must be one of float16, bfloat16"),
        (["--golden", str(tmp_path / "nope")], "nope: not a directory"),
    ]:
        assert main(["golden", "check", str(tmp_path), *argv]) == 2 if argv[0] == "--golden" \
            else True  # fmt: skip
        if argv[0] != "--golden":
            with pytest.raises(SystemExit) as usage:
                main(["golden", "check", str(tmp_path), *argv])
            assert usage.value.code == 2
        assert message in capsys.readouterr().err
    assert main(["golden", "check", str(tmp_path / "absent")]) == 2
    assert "absent: not a directory" in capsys.readouterr().err


def test_golden_check_draws_pictures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    case = golden.load(CASE)
    results, pictures = tmp_path / "results", tmp_path / "pictures"
    results.mkdir()
    np.savez(results / f"{CASE}.npz", output=_scaled_output(case, 1 + 3e-5))
    np.savez(results / "f64_k3.npz", **golden.load("f64_k3").expected)
    assert main(["golden", "check", str(results), "--plot", str(pictures)]) == 1
    out = capsys.readouterr().out
    assert f"picture: {pictures / (CASE + '.png')}" in out
    assert sorted(p.name for p in pictures.iterdir()) == [f"{CASE}.png", "f64_k3.png"]


def test_the_runner_draws_failing_cases_and_names_the_file(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(_forward_off_by(1.5), filter=CASE, dtypes="float32", drawn=0,
                      plot=tmp_path)  # fmt: skip
    picture = tmp_path / f"{CASE}.png"
    assert f"picture: {picture}" in str(failure.value) and picture.stat().st_size > 10_000
    report = assert_conv1d(uscale_ref.conv1d, filter=CASE, dtypes="float32", drawn=1)
    drawn = report.plot(tmp_path / "all")
    assert len(drawn) == 2 and all(p.suffix == ".png" and ":" not in p.name for p in drawn)


def test_the_runner_refuses_options_it_cannot_honour():
    with pytest.raises(ValueError, match="accumulate must be one of"):
        assert_conv1d(uscale_ref.conv1d, accumulate="tf32")
    with pytest.raises(ValueError, match="skip: 'bonds' is not one of"):
        assert_conv1d(uscale_ref.conv1d, skip="bonds")
    with pytest.raises(TypeError, match="plot must be a folder"):
        assert_conv1d(uscale_ref.conv1d, plot=3)


def test_the_plugin_takes_the_same_options(pytester):
    pytest.importorskip("matplotlib")
    pytester.makepyfile(
        f"""
        import numpy as np
        import pytest
        import uscale_ref

        @pytest.mark.uscale_ref_golden(filter="{CASE}")
        def test_off_by_a_little(golden_case):
            x, w, b, _ = golden_case.inputs.values()
            y = uscale_ref.conv1d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                  **golden_case.kwargs) * (1 + 1e-6)
            golden_case.check(output=y.astype(np.float32), skip="bias")
            with pytest.raises(AssertionError, match="errors biased"):
                golden_case.check(output=y.astype(np.float32))
            with pytest.raises(AssertionError, match="picture: "):
                golden_case.check(output=(1.5 * y).astype(np.float32))
        """
    )
    plots = pytester.path / "plots"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--uscale-ref-plot={plots}")
    result.assert_outcomes(passed=1)
    assert (plots / f"{CASE}.png").exists()


def test_the_plugin_refuses_to_draw_without_matplotlib(pytester, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    pytester.makepyfile("def test_nothing(golden_case): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--uscale-ref-plot={pytester.path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--uscale-ref-plot: drawing needs matplotlib*"])


def test_a_report_summary_reads_in_one_line():
    case = golden.load(CASE)
    report = verdict.judge(case, {"output": case.expected["output"]}).arrays[0]
    assert report.summary().startswith("output: exact of float32's 24 (least tile exact)")
