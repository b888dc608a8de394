"""The workspace setting."""

from __future__ import annotations

import re

import pytest

from uscale_ref import config


def test_workspace_context_restores():
    before = config.get_workspace_bytes()
    with config.workspace(1234):
        assert config.get_workspace_bytes() == 1234
    assert config.get_workspace_bytes() == before


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_workspace(value, error):
    with pytest.raises(error, match="nbytes"):
        config.set_workspace_bytes(value)


def test_environment_variable(monkeypatch):
    monkeypatch.setenv("USCALE_REF_WORKSPACE_MB", "2")
    assert config._from_environment() == 2 * 2**20
    assert config.environment_problem() is None


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("lots", "must be a number of MiB"),
        ("-1", "must be a positive, finite number"),
        ("inf", "must be a positive, finite number"),
        ("1e400", "must be a positive, finite number"),
        ("nan", "must be a positive, finite number"),
        ("1e-9", "must be at least one byte"),
        ("1e30", "must be at most"),
    ],
)
def test_bad_environment_value_warns_and_keeps_the_default(monkeypatch, text, pattern):
    """A bad setting never breaks the import: one warning naming the variable, the default."""
    monkeypatch.setenv("USCALE_REF_WORKSPACE_MB", text)
    with pytest.warns(UserWarning, match=f"USCALE_REF_WORKSPACE_MB {pattern}"):
        assert config._from_environment() == config.DEFAULT_WORKSPACE_BYTES
    assert pattern in config.environment_problem()


def test_bad_environment_value_does_not_break_the_import(monkeypatch):
    import subprocess
    import sys

    environment = {**__import__("os").environ, "USCALE_REF_WORKSPACE_MB": "inf"}
    done = subprocess.run(
        [sys.executable, "-c", "import uscale_ref.config as c; print(c.get_workspace_bytes())"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(config.DEFAULT_WORKSPACE_BYTES)
    assert "USCALE_REF_WORKSPACE_MB" in done.stderr


def test_every_subpackage_is_listed_for_the_wheel():
    # A package missing from pyproject's list is left out of the wheel, and an installed
    # uscale_ref fails to import (an editable install hides it).
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "pyproject.toml").read_text()
    listed = set(re.findall(r'^\s+"(uscale_ref[a-z_.]*)",$', text, re.MULTILINE))
    found = {
        ".".join(path.parent.relative_to(root).parts)
        for path in (root / "uscale_ref").rglob("__init__.py")
    }
    assert found - listed == set()
