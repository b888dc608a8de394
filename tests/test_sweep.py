"""Sweeps: cases built in parallel processes or on a dask cluster give the serial run's bytes."""

from __future__ import annotations

import importlib.util

import pytest

from uscale_ref import golden
from uscale_ref.cli import main
from uscale_ref.golden import CaseSpec
from uscale_ref.golden.sweep import needs

SWEEP = [
    CaseSpec("float32", kernel_size=k, in_channels=c, out_channels=o, length=length, padding=1)
    for k, c, o, length in [(3, 4, 6, 40), (5, 8, 8, 64), (3, 16, 8, 100), (9, 8, 16, 50)]
] + [
    CaseSpec("bfloat16", kernel_size=4, groups=2, padding="same"),
    CaseSpec("complex64", kernel_size=3, stride=2, compact=50, length=200),
]


def _folder_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())
            if not path.name.startswith(".")}  # fmt: skip


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serial")
    golden.generate(folder, specs=SWEEP, progress=None)
    return _folder_bytes(folder)


def test_parallel_processes_give_the_serial_bytes(tmp_path, serial):
    golden.generate(tmp_path, specs=SWEEP, progress=None, jobs=2)
    assert _folder_bytes(tmp_path) == serial


def test_a_local_cluster_gives_the_serial_bytes(tmp_path, serial):
    if importlib.util.find_spec("distributed") is None:
        pytest.skip("dask.distributed is not installed (pip install 'uscale-ref[distributed]')")
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:  # fmt: skip
        golden.generate(tmp_path, specs=SWEEP, progress=None, scheduler=cluster.scheduler_address)
    assert _folder_bytes(tmp_path) == serial


def test_the_command_line_sweeps_a_case_file_with_jobs(tmp_path, capsys):
    cases = tmp_path / "sweep.toml"
    cases.write_text(
        "[[case]]\nC = 8\nO = 8\nL = 64\nK = 5\npadding = 'same'\n\n"
        "[[case]]\ndtype = 'float64'\nC = 4\nO = 4\nL = 30\nK = 3\ncompact = 20\n"
    )
    out = tmp_path / "out"
    assert main(["golden", "generate", "--out", str(out), "--cases", str(cases), "--jobs",
                 "2"]) == 0  # fmt: skip
    assert sorted(golden.cases(golden_dir=out)) == ["f32_c8o8l64_same_k5",
                                                    "f64_o4l30_k3_compact20"]  # fmt: skip
    assert main(["golden", "verify", str(out)]) == 0


def test_a_case_too_big_for_the_machine_is_refused_before_any_work(tmp_path, capsys):
    big = "dtype=float32,N=4,C=100000,L=100000,O=100000,K=3"
    assert main(["golden", "generate", "--out", str(tmp_path / "big"), "--case", big]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GiB of memory" in err and "--compact" in err
    assert "Traceback" not in err and not (tmp_path / "big").exists()
    gpu_layer = CaseSpec("float32", kernel_size=9, batch_size=32, in_channels=1024,
                         out_channels=1024, length=65536, padding="same")  # fmt: skip
    assert needs(gpu_layer)[0] > 2**37  # whole: far beyond this machine
    memory, size = needs(CaseSpec(**{**gpu_layer.__dict__, "compact": 20000}))
    assert memory < 2**31 and size < 2**21  # compact: fits


def test_usage_mistakes_are_named(tmp_path, capsys):
    afile = tmp_path / "a_file"
    afile.write_text("")
    assert main(["golden", "generate", "--out", str(afile), "--case", "K=3"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["golden", "generate", "--out", str(tmp_path / "x"), "--compact", "5"]) == 2
    assert "--compact applies to your own cases" in capsys.readouterr().err
    for command in (["verify", str(tmp_path / "nope")],
                    ["check", str(tmp_path), "--golden", str(tmp_path / "nope")]):  # fmt: skip
        assert main(["golden", *command]) == 2
        assert "nope: not a directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="jobs must be a number of processes"):
        golden.generate(tmp_path / "y", specs=SWEEP[:1], jobs=0, progress=None)
