"""The command line runs a real computation and reports errors without a traceback."""

from __future__ import annotations

import subprocess
import sys

from uscale_ref.cli import main


def test_demo_small(capsys):
    assert (
        main(
            [
                "demo",
                "--batch",
                "2",
                "--channels",
                "4",
                "--out-channels",
                "6",
                "--length",
                "20",
                "--kernel",
                "3",
                "--constraint",
                "none",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "output (2, 6, 18)" in out
    for name in ("output", "grad_input", "grad_weight", "grad_bias"):
        assert name in out


def test_demo_bad_argument_is_a_clean_error(capsys):
    assert main(["demo", "--groups", "5"]) == 2
    assert "groups=5 must divide" in capsys.readouterr().err


def test_python_dash_m():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "uscale_ref",
            "demo",
            "--batch",
            "1",
            "--channels",
            "2",
            "--out-channels",
            "2",
            "--length",
            "8",
            "--kernel",
            "3",
            "--padding",
            "same",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "output (1, 2, 8)" in result.stdout


def test_bench_quick_runs(capsys):
    assert main(["bench", "--only", "tiny", "--repeats", "1", "--no-torch"]) == 0
    out = capsys.readouterr().out
    assert "2,8,64,8,3,1,1,1,1,f32 tiny" in out and "GFLOP/s" in out


def test_bench_rejects_unknown_shape(capsys):
    assert main(["bench", "--only", "no such shape"]) == 2
    assert "no benchmark shape" in capsys.readouterr().err
