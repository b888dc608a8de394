"""The fixture writer and readers under hostile conditions: links, full disks, races, signals.

``golden generate`` must never write outside its folder, never leave a
folder that no longer verifies, and never lose a case another run wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from uscale_ref import golden
from uscale_ref.cli import main
from uscale_ref.golden.errors import GoldenFileError
from uscale_ref.golden.store import MAX_MANIFEST_BYTES

CASES = "f64_k[13]"  # two small cases


@pytest.fixture
def folder(tmp_path):
    """A valid two-case suite folder."""
    target = tmp_path / "suite"
    golden.generate(target, pattern=CASES, progress=None)
    return target


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _run(code, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_a_symlink_in_the_folder_is_replaced_not_written_through(folder, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    notes = elsewhere / "notes.txt"
    notes.write_text("my notes")
    (folder / "f64_k3.npz").unlink()
    (folder / "f64_k3.npz").symlink_to(notes)
    golden.generate(folder, pattern="f64_k3", progress=None)
    assert notes.read_text() == "my notes"
    assert not (folder / "f64_k3.npz").is_symlink()
    assert golden.verify(folder) == []


def test_a_full_disk_leaves_the_suite_as_it_was(folder):
    before = _snapshot(folder)
    # A file-size limit that every fixture fits (at most 91 kB) and the whole suite's manifest
    # (about 150 kB) does not: its write fails (EFBIG) after the fixtures are staged.
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024))\n"
        "from uscale_ref.cli import main\n"
        "sys.exit(main(['golden', 'generate', '--out', sys.argv[1]]))\n"
    )
    process = _run(code, folder)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    assert "uscale-ref: error:" in err and "Traceback" not in err
    assert _snapshot(folder) == before
    assert golden.verify(folder) == []


def test_two_runs_into_one_folder_both_land(tmp_path):
    target = tmp_path / "shared"
    code = (
        "import sys\nfrom uscale_ref.cli import main\n"
        "sys.exit(main(['golden', 'generate', '--out', sys.argv[1], '--dtype', sys.argv[2], "
        "'--filter', '*_g2_*']))\n"
    )
    runs = [_run(code, target, dtype) for dtype in ("float32", "float64")]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    expected = golden.cases(dtype=["float32", "float64"], filter="*_g2_*")
    listed = [entry["id"] for entry in json.loads((target / "manifest.json").read_text())["cases"]]
    assert sorted(listed) == sorted(expected)
    assert golden.verify(target) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_leaves_the_folder_as_it_was(folder, sig):
    before = _snapshot(folder)
    # Each case is slowed down to 50 ms, so the suite takes some ten seconds on any machine
    # and the signal lands inside the generation, not after it.
    code = (
        "import sys, time\nfrom uscale_ref.cli import main\n"
        "from uscale_ref.golden import fixture, sweep\n"
        "def slow(*args, **kwargs):\n"
        "    time.sleep(0.05)\n"
        "    return fixture.build(*args, **kwargs)\n"
        "sweep.build = slow\n"
        "print('started', flush=True)\n"
        "sys.exit(main(['golden', 'generate', '--jobs', '1', '--out', sys.argv[1]]))\n"
    )
    process = _run(code, folder)
    assert process.stdout.readline().strip() == "started"
    time.sleep(1.5)  # inside the generation
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "nothing was changed" in err.strip().splitlines()[-1]
    assert _snapshot(folder) == before  # no new fixture, no temporary file left
    assert golden.verify(folder) == []


def test_an_oversized_manifest_is_refused_before_it_is_read(folder, tmp_path):
    with open(folder / "manifest.json", "r+b") as stream:
        stream.truncate(MAX_MANIFEST_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(GoldenFileError, match="larger than"):
        golden.load("f64_k3", folder)
    assert any("larger than" in problem for problem in golden.verify(folder))
    results = tmp_path / "results"
    results.mkdir()
    (results / "f64_k3.npz").write_bytes(b"")
    _, problems = golden.check_directory(results, folder)
    assert len(problems) == 1 and "larger than" in problems[0]


def test_load_checks_the_case_id_inside_the_file(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["cases"]:
        if entry["id"] == "f64_k1":
            entry["file"] = "f64_k3.npz"
            entry["sha256"] = golden.fixture.sha256((folder / "f64_k3.npz").read_bytes())
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(GoldenFileError, match="holds case 'f64_k3'"):
        golden.load("f64_k1", folder)


def test_a_newline_in_a_file_name_cannot_forge_a_line(folder, tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    case = golden.load("f64_k3", folder)
    np.savez(results / "f64_k3\ncheck: 9 passed, 0 failed, 0 problem(s).npz", **case.expected)
    assert main(["golden", "check", str(results), "--golden", str(folder)]) == 1
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert not any(line.startswith("check: 9 passed") for line in lines)
    assert any("\\n" in line and "control characters" in line for line in lines)


def test_generate_and_verify_ignore_the_callers_floating_point_traps(tmp_path):
    with np.errstate(all="raise"):
        golden.generate(tmp_path, pattern="f16_*same*", progress=None)
        assert golden.verify(tmp_path) == []


def test_verify_of_a_missing_folder_names_it(tmp_path):
    problems = golden.verify(tmp_path / "nowhere")
    assert problems == [f"{tmp_path / 'nowhere'}: not a directory"]


def test_the_lock_file_is_not_a_case(folder):
    assert (folder / ".uscale-ref.lock").exists()
    assert golden.verify(folder) == []
    assert os.listdir(folder).count("manifest.json") == 1


def test_a_failed_first_run_leaves_no_folder(tmp_path, monkeypatch):
    from uscale_ref.golden import sweep

    def broken(spec, step=None):
        raise MemoryError("no room for this case")

    monkeypatch.setattr(sweep, "build", broken)
    with pytest.raises(MemoryError):
        golden.generate(tmp_path / "new", pattern="f64_k3", progress=None)
    assert not (tmp_path / "new").exists()
