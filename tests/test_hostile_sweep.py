"""Sweeps and schedulers under hostile conditions: interrupted, killed, unguarded, silent.

Each ends in one line naming what happened, within a stated time, and leaves
the output folder as it was.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from uscale_ref import golden
from uscale_ref.cli import main
from uscale_ref.golden import CaseSpec

POSIX = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and process groups")
DISTRIBUTED = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None, reason="needs dask.distributed"
)
# Cases that take a few seconds each: a sweep is surely running when it is interrupted.
SLOW = [f"dtype=float64,N=4,C=64,L=2048,O=64,K={k},padding=same" for k in (9, 11, 13, 15)]


def _command(out, *extra):
    cases = [part for text in SLOW for part in ("--case", text)]
    return [sys.executable, "-m", "uscale_ref", "golden", "generate", "--out", str(out),
            *cases, "--jobs", "2", *extra]  # fmt: skip


def _interrupt(tmp_path, number):
    """Start a two-job sweep, let it work, send ``number`` to its whole process group (as a
    terminal's Ctrl-C does), and return its exit code, stderr and seconds to end."""
    out = tmp_path / "out"
    process = subprocess.Popen(_command(out), stderr=subprocess.PIPE, text=True,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while _children(process.pid) < 2 and time.monotonic() < deadline:  # the sweep is running
        time.sleep(0.2)
    time.sleep(1.0)  # and the workers are past their start
    os.killpg(process.pid, number)
    start = time.monotonic()
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # pragma: no cover - the hang this test is about
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, err, time.monotonic() - start, out


def _children(pid: int) -> int:
    """How many processes ``pid`` has started that still run (from /proc)."""
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            count += int(fields[1]) == pid  # the parent's pid, after the state
    return count


@POSIX
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sweep_stops_at_once_in_one_line(tmp_path, number):
    code, err, seconds, out = _interrupt(tmp_path, number)
    assert code == 130, err
    assert "Traceback" not in err and "nothing was changed" in err
    assert seconds < 20
    assert not out.exists() or not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@POSIX
def test_temporary_files_of_a_killed_run_are_removed_by_the_next(tmp_path):
    out = tmp_path / "out"
    golden.generate(out, specs=[CaseSpec("float32")], progress=None)
    orphan = out / ".uscale-ref-999999999-0badcafe-x1.tmp"  # no such process
    orphan.write_bytes(b"half a fixture")
    mine = out / f".uscale-ref-{os.getpid()}-0badcafe-x2.tmp"  # a live process: kept
    mine.write_bytes(b"")
    golden.generate(out, specs=[CaseSpec("float64")], progress=None)
    assert not orphan.exists() and mine.exists()


@POSIX
def test_a_sigkilled_run_leaves_nothing_the_next_run_keeps(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    process = subprocess.Popen(_command(out, "--jobs", "1"), stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    time.sleep(6.0)  # the first case is staged by now
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    golden.generate(out, specs=[CaseSpec("float32")], progress=None)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_an_unguarded_script_gets_one_clear_error(tmp_path):
    script = tmp_path / "unguarded.py"
    out = tmp_path / "out"
    script.write_text(
        textwrap.dedent(f"""
        from uscale_ref import golden
        from uscale_ref.golden import CaseSpec

        specs = [CaseSpec("float32", kernel_size=k) for k in (3, 5)]
        golden.generate({str(out)!r}, specs=specs, jobs=2, progress=None)
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert 'if __name__ == "__main__":' in done.stderr
    assert done.stderr.count("Traceback") <= 3  # the script's, and one per worker at most
    assert not out.exists()


def test_timeouts_must_be_positive_seconds(tmp_path, capsys):
    with pytest.raises(ValueError, match="connect_timeout"):
        golden.generate(tmp_path, specs=[CaseSpec("float32")], connect_timeout=0, progress=None)
    with pytest.raises(SystemExit) as exit:
        main(["golden", "generate", "--out", str(tmp_path), "--case", "K=3",
              "--worker-timeout", "inf"])  # fmt: skip
    assert exit.value.code == 2 and "--worker-timeout" in capsys.readouterr().err


def _serve(reply: bytes | None):
    """A local TCP service that accepts and says ``reply`` (None: says nothing), and its
    address; it runs until the test ends."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []

    def accept():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)
            if reply is not None:
                connection.sendall(reply)

    threading.Thread(target=accept, daemon=True).start()
    return server, f"tcp://127.0.0.1:{server.getsockname()[1]}"


@DISTRIBUTED
@pytest.mark.parametrize(
    "reply, said",
    [(None, "no dask.distributed scheduler answered within 2 s (--connect-timeout)"),
     (b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n", "speaks another protocol")],
    ids=["silent", "another protocol"],
)  # fmt: skip
def test_a_scheduler_address_that_is_no_scheduler(tmp_path, capsys, reply, said):
    server, address = _serve(reply)
    out = tmp_path / "out"
    start = time.monotonic()
    try:
        code = main(["golden", "generate", "--out", str(out), "--case", "K=3", "--case", "K=5",
                     "--scheduler", address, "--connect-timeout", "2"])  # fmt: skip
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == 1 and said in err and address in err and "Traceback" not in err
    assert time.monotonic() - start < 30 and not out.exists()


@DISTRIBUTED
def test_a_scheduler_without_workers_and_workers_too_small(tmp_path, capsys):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        code = main(["golden", "generate", "--out", str(tmp_path / "a"), "--case", "K=3",
                     "--scheduler", address, "--worker-timeout", "1"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 1 and "no worker joined within 1 s (--worker-timeout" in err
        assert "waiting up to 1 s (--worker-timeout) for a worker" in err  # not a silent wait
    with LocalCluster(n_workers=1, processes=False, memory_limit="64MB",
                      dashboard_address=None) as cluster:  # fmt: skip
        code = main(["golden", "generate", "--out", str(tmp_path / "b"), "--case", SLOW[0],
                     "--scheduler", cluster.scheduler_address])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 1 and "needs about" in err and "the workers may use" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
