"""The benchmark's plumbing: any array library, waiting on the device, clean refusals.

These check that the timing harness does what it says (runs uscale_ref on the
chosen library, waits for the device after every timed call, reports); they
time nothing that is asserted on.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from uscale_ref import kernels
from uscale_ref.cli import main
from uscale_ref.geometry import conv1d_geometry
from uscale_ref.tools import benchmark

TINY = benchmark.SHAPES[0]


def _cupy_reaches_a_gpu() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        benchmark.cuda_platform()
    except ValueError:
        return False
    return True


class CountingPlatform:
    """array-api-strict standing in for a device library, counting the waits."""

    def __init__(self, torch_usable: bool = True) -> None:
        strict = pytest.importorskip("array_api_strict")
        self.waits = 0
        self.platform = benchmark.Platform(
            "strict",
            strict,
            "cpu",
            self.wait,
            matmul_size=64,
            library="array-api-strict",
            torch_usable=torch_usable,
        )

    def wait(self) -> None:
        self.waits += 1


def test_ours_runs_on_the_platforms_library():
    counting = CountingPlatform()
    arrays = benchmark.make_arrays(TINY, np.random.default_rng(0))
    calls = benchmark.ours(TINY, arrays, counting.platform)
    output = calls["fwd"]()
    grads = calls["fwd+bwd"]()
    assert type(output).__module__.startswith("array_api_strict")
    assert all(type(g).__module__.startswith("array_api_strict") for g in grads)
    expected = benchmark.ours(TINY, arrays)["fwd"]()
    np.testing.assert_allclose(np.from_dlpack(output), expected, rtol=1e-6, atol=1e-6)


def test_run_waits_for_the_device_after_every_timed_call():
    counting = CountingPlatform()
    repeats = 2
    rows, rates = benchmark.run(repeats, [TINY], with_torch=False, target=counting.platform)
    assert len(rates) == repeats and all(rate > 0 for rate in rates)
    row = rows[0]
    assert row[("ours", "fwd")] > 0 and row[("ours", "fwd+bwd")] > 0
    # matmul: one warm-up + one per repeat; per pass: a warm-up, a settling
    # call per round, and every timed call.
    matmul_waits = 1 + repeats
    pass_waits = 2 * (1 + 1 + repeats)
    assert counting.waits == matmul_waits + pass_waits
    text = benchmark.report(rows, rates, target=counting.platform)
    assert "float32 matmul (64^3) with array-api-strict here" in text


def test_a_torch_that_cannot_reach_the_device_is_left_out():
    counting = CountingPlatform(torch_usable=False)
    rows, _ = benchmark.run(1, [TINY], with_torch=True, target=counting.platform)
    assert set(rows[0]) == {"shape", ("ours", "fwd"), ("ours", "fwd+bwd")}


def test_torch_contender_follows_the_platforms_device():
    pytest.importorskip("torch")
    pytest.importorskip("unit_scaling")
    torch, upstream = benchmark._load_torch()
    arrays = benchmark.make_arrays(TINY, np.random.default_rng(0))
    grads = benchmark.theirs(TINY, arrays, torch, upstream, device="cpu")["fwd+bwd"]()
    assert all(g.device.type == "cpu" for g in grads)
    ours = benchmark.ours(TINY, arrays)["fwd+bwd"]()
    for a, b in zip(ours, grads, strict=True):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(_cupy_reaches_a_gpu(), reason="CuPy reaches a GPU here")
def test_cuda_without_a_gpu_is_a_clean_error(capsys):
    assert main(["bench", "--device", "cuda", "--only", "tiny", "--repeats", "1"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "Traceback" not in err


@pytest.mark.skipif(not _cupy_reaches_a_gpu(), reason="needs CuPy and an NVIDIA GPU")
def test_cuda_bench_runs(capsys):
    assert main(["bench", "--device", "cuda", "--only", "tiny", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "with CuPy here" in out and "tiny" in out


class _FakeCuda:
    """Just enough of ``cupy.cuda`` for :func:`benchmark.cuda_platform`."""

    def __init__(self, devices: int) -> None:
        self.synchronized = 0
        fake = self

        class Runtime:
            @staticmethod
            def getDeviceCount() -> int:  # CuPy's name
                return devices

            @staticmethod
            def getDeviceProperties(device: int) -> dict[str, object]:  # CuPy's name
                return {"name": f"Stand-in GPU {device}".encode()}

        class Device:
            id = 0

            def synchronize(self) -> None:
                fake.synchronized += 1

        self.runtime = Runtime
        self.Device = Device


def test_cuda_platform_waits_on_cupys_device(monkeypatch):
    cuda = _FakeCuda(devices=1)
    fake_cupy = type("FakeCupy", (), {"cuda": cuda})()
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    target = benchmark.cuda_platform()
    assert target.xp is fake_cupy and target.torch_device == "cuda"
    torch = benchmark._load_torch()[0]
    assert target.torch_usable == (torch is not None and torch.cuda.is_available())
    target.synchronize()
    assert cuda.synchronized == 1
    assert "Stand-in GPU 0" in benchmark.describe_machine(target)


def test_cuda_platform_switches_torchs_tf32_off(monkeypatch):
    """Both sides compute float32 in float32: torch's GPU default would round to TF32."""
    from types import SimpleNamespace

    fake_torch = SimpleNamespace(
        cuda=SimpleNamespace(is_available=lambda: True, synchronize=lambda: None),
        backends=SimpleNamespace(
            cudnn=SimpleNamespace(allow_tf32=True),
            cuda=SimpleNamespace(matmul=SimpleNamespace(allow_tf32=True)),
        ),
    )
    monkeypatch.setattr(benchmark, "_load_torch", lambda: (fake_torch, object()))
    monkeypatch.setitem(sys.modules, "cupy", type("FakeCupy", (), {"cuda": _FakeCuda(1)})())
    target = benchmark.cuda_platform()
    assert target.torch_usable
    assert fake_torch.backends.cudnn.allow_tf32 is False
    assert fake_torch.backends.cuda.matmul.allow_tf32 is False


def test_cuda_platform_refuses_a_machine_without_gpus(monkeypatch):
    fake_cupy = type("FakeCupy", (), {"cuda": _FakeCuda(devices=0)})()
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    with pytest.raises(ValueError, match="finds no GPU"):
        benchmark.cuda_platform()


def test_each_side_runs_in_its_own_process():
    """run_separate: worker processes per side and round, medians and the spread of rounds."""
    shape = benchmark.SHAPES[0]
    rows, rates = benchmark.run_separate(1, 2, [shape], with_torch=False)
    row = rows[0]
    low, high = row[("spread", "ours", "fwd+bwd")]
    assert 0 < low <= row[("ours", "fwd+bwd")] <= high  # a median of all lies between rounds
    assert rates and "round medians" in benchmark.report(rows, rates)


def test_worker_prints_its_timings_as_json():
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "uscale_ref.tools.benchmark", "--worker", "ours",
         "--shape-index", "0", "--repeats", "2"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    times = json.loads(done.stdout)
    assert set(times) == {"fwd", "fwd+bwd"} and all(len(v) == 2 for v in times.values())


def _script(name):
    """A script of benchmarks/ loaded as a module."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_bounds_count_the_bytes_and_operations_a_pass_must_do():
    """Depthwise (8,256,2048,256,7): 4 bytes each of x twice and dx, y and dy, w twice and dw."""
    bounds = _script("bounds")
    shape = next(s for s in benchmark.SHAPES if s.note == "depthwise")
    x = y = 8 * 256 * 2048
    w = 256 * 7
    assert bounds.pass_bytes(shape) == 4 * (3 * x + 2 * y + 3 * w + 2 * 256)
    compute, memory = bounds.floors(shape, {"f32": 100.0}, 10.0)
    assert compute == pytest.approx(3 * 2 * 8 * 256 * 2048 * 7 / 100e9)
    assert memory == pytest.approx(bounds.pass_bytes(shape) / 10e9)
    assert memory > compute  # depthwise layers are bound by memory, dense ones by arithmetic
    dense = benchmark.SHAPES[2]
    compute, memory = bounds.floors(dense, {"f32": 100.0}, 10.0)
    assert compute > memory


def test_page_fault_script_measures_a_forward_backward():
    faults, seconds = _script("page_faults").measure("ours", 0, calls=3)
    assert faults >= 0 and 0 < seconds < 5


@pytest.mark.parametrize("dtype", ["f32", "c64"])
def test_numpy_floor_times_formulations_that_compute_the_convolution(dtype):
    """Each formulation's pieces, run in order, give the correlation a plain einsum gives."""
    floor = _script("numpy_floor")
    shape = benchmark.Shape(3, 4, 20, 5, 3, 1, 2, 2, 1, dtype)  # dilation 2: taps 2 apart
    rng = np.random.default_rng(5)
    reach, tol = 4, 1e-5
    for rows, inner in ((shape.O, shape.C), (shape.C, shape.O)):  # forward, dgrad
        case = floor.correlation(rows, inner, shape, shape.L, rng)
        padded = np.pad(case.data, ((0, 0), (0, 0), (reach // 2, reach - reach // 2)))
        expected = sum(
            np.einsum("rq,nql->nrl", m, padded[:, :, 2 * k : 2 * k + shape.L])
            for k, m in enumerate(case.matrices)
        )
        for name, (parts, _) in floor.FORMULATIONS["forward"].items():
            case.result[...] = np.nan
            for piece in parts:
                case.pieces[piece]()
            np.testing.assert_allclose(case.result, expected, rtol=tol, atol=tol, err_msg=name)
    wgrad = floor.weight_gradient(shape, rng)
    expected = np.stack([
        np.einsum("nol,ncl->oc", wgrad.gradient, wgrad.padded[:, :, 2 * k : 2 * k + shape.L])
        for k in range(shape.K)
    ])  # fmt: skip
    for name, (parts, _) in floor.FORMULATIONS["wgrad"].items():
        wgrad.result[...] = np.nan
        wgrad.stacked[...] = np.nan
        for piece in parts:
            wgrad.pieces[piece]()
        if name == "stacked":  # stacked[o, k C + c]
            got = wgrad.stacked.reshape(shape.O, shape.K, shape.C).transpose(1, 0, 2)
        else:
            got = wgrad.result
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol, err_msg=name)


def test_paths_script_times_every_valid_path_and_marks_the_plans_choice(monkeypatch, capsys):
    """One row per (op, path) the geometry allows, both blockings timed, one ``*`` per op."""
    paths = _script("paths")
    monkeypatch.setattr(sys, "argv", ["paths.py", "--only", "tiny", "--repeats", "1"])
    assert paths.main() == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "tiny" in line]
    shape = next(s for s in benchmark.SHAPES if s.note == "tiny")
    x, w, _, _ = benchmark.make_arrays(shape, np.random.default_rng(0))
    geometry = conv1d_geometry(x.shape, w.shape, **shape.kwargs)
    for op in paths.OPS:
        mine = [row.split("|") for row in rows if f"| {op} |" in row]
        assert [cells[3].strip(" *") for cells in mine] == list(kernels.valid_paths(op, geometry))
        assert sum("*" in cells[3] for cells in mine) == 1
        assert all(float(cells[4]) > 0 and float(cells[5]) > 0 for cells in mine)


def test_golden_speed_script_times_a_fixture_beside_a_plain_pass(capsys):
    speed = _script("golden_speed")
    assert speed.main(["--shape", "1,4,40,4,3", "--dtype", "float32", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "(1, 4, 40, 4, 3)" in lines[1] and lines[1].endswith("x")
