"""The command line runs a real computation and reports errors without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


BAD_ARGUMENTS = [
    (["demo", "--groups", "5"], "argument --groups: 5 must divide"),
    (["demo", "--groups", "0"], "argument --groups: must be at least 1"),
    (["demo", "--groups", "-1"], "argument --groups: must be at least 1"),
    (["demo", "--batch", "-1"], "argument --batch: must be at least 1"),
    (["demo", "--kernel", "x"], "argument --kernel: expected an integer"),
    (["demo", "--padding", "abc"], "argument --padding: expected a non-negative integer"),
    (["demo", "--padding", "-2"], "argument --padding: must be at least 0"),
    (["demo", "--seed", "-5"], "argument --seed: must be at least 0"),
    (["demo", "--dtype", "int8"], "argument --dtype: invalid choice"),
    (["demo", "--length", "2", "--kernel", "5"], "uscale-ref: error: the dilated kernel"),
    (["golden", "generate", "--out", ""], "argument --out: expected a folder"),
    (["golden", "generate", "--out", "x", "--filter", "nothing*"], "uscale-ref: error: no case"),
    (["golden", "generate"], "the following arguments are required: --out"),
    (["golden", "verify", "/nonexistent/golden"], "/nonexistent/golden: not a directory"),
    (["golden", "check", "/nonexistent/results"], "not a directory"),
    (["golden", "frobnicate"], "invalid choice"),
    (["bench", "--repeats", "zero"], "argument --repeats: expected an integer"),
    (["bench", "--repeats", "0"], "argument --repeats: must be at least 1"),
    (["nonsense"], "invalid choice"),
    ([], "the following arguments are required"),
]


@pytest.mark.parametrize(
    ("argv", "message"), BAD_ARGUMENTS, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_bad_arguments_are_usage_errors(capsys, tmp_path, monkeypatch, argv, message):
    """Every subcommand: exit 2, a one-line reason naming the option, no traceback."""
    monkeypatch.chdir(tmp_path)
    code = _exit_code(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err


def test_bad_workspace_variable_stops_the_cli(capsys, monkeypatch):
    monkeypatch.setenv("USCALE_REF_WORKSPACE_MB", "nan")
    assert _exit_code(["demo"]) == 2
    assert "uscale-ref: error: USCALE_REF_WORKSPACE_MB must be" in capsys.readouterr().err


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


def test_version(capsys):
    import uscale_ref

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"uscale-ref {uscale_ref.__version__}"
