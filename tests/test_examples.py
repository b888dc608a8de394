"""The worked examples: upstream against the goldens, the C reader, a user's own project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "upstream_against_goldens.py"


@pytest.mark.upstream
def test_upstream_example_reports_every_case():
    pytest.importorskip("torch")
    pytest.importorskip("unit_scaling")
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    summary = lines[-1]
    assert "0 failed" in summary
    # Cases upstream cannot run are reported with upstream's error, not skipped.
    assert any("cannot run" in line and "TypeError" in line for line in lines)
    assert any("_same_" in line and "cannot run" in line for line in lines)
    from uscale_ref import golden

    assert len(lines) - 1 == len(golden.cases())


ROOT = Path(__file__).resolve().parents[1]


def test_the_c_reader_judges_the_committed_real_cases(tmp_path):
    import shutil

    if shutil.which("cc") is None or not Path("/usr/include/cjson/cJSON.h").exists():
        pytest.skip("needs a C compiler and cJSON (apt-get install libcjson-dev)")
    program = tmp_path / "fixture_check"
    source = ROOT / "examples" / "c" / "fixture_check.c"
    subprocess.run(
        ["cc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", str(program), str(source),
         "-lcjson", "-lm"],
        check=True,
    )  # fmt: skip
    files = sorted(str(p) for p in (ROOT / "golden").glob("f[36][24]_*.npz"))
    result = subprocess.run([str(program), *files], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    assert result.stdout.splitlines()[-1] == f"{len(files)} passed, 0 failed, 0 skipped"
    broken = subprocess.run(
        [str(program), str(ROOT / "golden" / "f64_k3.npz")],
        capture_output=True, text=True, env={"FIXTURE_CHECK_MISTAKE": "flip"},
    )  # fmt: skip
    assert broken.returncode == 1 and "FAIL" in broken.stdout


def test_the_c_reader_decodes_and_draws_operands_in_their_own_formats(tmp_path):
    import shutil

    if shutil.which("cc") is None or not Path("/usr/include/cjson/cJSON.h").exists():
        pytest.skip("needs a C compiler and cJSON (apt-get install libcjson-dev)")
    from uscale_ref import golden
    from uscale_ref.golden import CaseSpec

    program = tmp_path / "fixture_check"
    source = ROOT / "examples" / "c" / "fixture_check.c"
    subprocess.run(["cc", "-O2", "-std=c99", "-Wall", "-o", str(program), str(source),
                    "-lcjson", "-lm"], check=True)  # fmt: skip
    mixed = {"input_format": "unit_scaling_e4m3", "weight_format": "float8_e4m3fn",
             "grad_output_format": "unit_scaling_e5m2"}  # fmt: skip
    specs = [
        CaseSpec("float32", kernel_size=3, in_channels=8, out_channels=8, length=40, **mixed),
        CaseSpec("float32", kernel_size=3, in_channels=8, out_channels=8, length=300,
                 padding=1, compact=200, **mixed),
        CaseSpec("float32", kernel_size=5, batch_size=3, in_channels=8, out_channels=4,
                 length=300, padding="same", fp8=True, compact=300),
    ]  # fmt: skip
    golden.generate(tmp_path / "cases", specs=specs, progress=None)
    files = sorted(str(p) for p in (tmp_path / "cases").glob("*.npz"))
    result = subprocess.run([str(program), *files], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    assert result.stdout.splitlines()[-1] == "3 passed, 0 failed, 0 skipped"


def test_the_user_project_example_passes_from_its_own_folder(tmp_path):
    import shutil

    project = tmp_path / "project"
    shutil.copytree(ROOT / "examples" / "user_project", project)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_kernel.py"],
        cwd=project, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
