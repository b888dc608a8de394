"""The one exception of the golden package."""

from __future__ import annotations

__all__ = ["GoldenFileError"]


class GoldenFileError(ValueError):
    """A fixture or manifest that is missing, corrupt, tampered with or inconsistent."""
