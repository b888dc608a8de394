"""The workspace setting."""

from __future__ import annotations

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
    monkeypatch.setenv("USCALE_REF_WORKSPACE_MB", "lots")
    with pytest.raises(ValueError, match="USCALE_REF_WORKSPACE_MB must be a number"):
        config._from_environment()
    monkeypatch.setenv("USCALE_REF_WORKSPACE_MB", "-1")
    with pytest.raises(ValueError, match="must be positive"):
        config._from_environment()
