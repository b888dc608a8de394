"""The exceptions of the golden package."""

from __future__ import annotations

__all__ = ["GoldenFileError", "SweepError"]


class GoldenFileError(ValueError):
    """A fixture or manifest that is missing, corrupt, tampered with or inconsistent."""


class SweepError(RuntimeError):
    """Cases could not be built where they were sent: a worker process died, a scheduler
    did not answer or had no workers, a case killed its workers. Nothing was written."""
