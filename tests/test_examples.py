"""The worked example: upstream unit_scaling + torch autograd held against the goldens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("unit_scaling")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "upstream_against_goldens.py"


@pytest.mark.upstream
def test_upstream_example_reports_every_case():
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
