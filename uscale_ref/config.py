"""Settings: the workspace bound.

The kernels process the length axis in blocks so that the temporary memory of
one call stays within a fixed *workspace* beyond its inputs and outputs (plus
one output-sized copy where blocks are joined). The default is 64 MiB; set the
environment variable ``USCALE_REF_WORKSPACE_MB`` or call
:func:`set_workspace_bytes` (or use :func:`workspace`) to change it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DEFAULT_WORKSPACE_BYTES", "get_workspace_bytes", "set_workspace_bytes", "workspace"]

DEFAULT_WORKSPACE_BYTES = 64 * 2**20


def _from_environment() -> int:
    text = os.environ.get("USCALE_REF_WORKSPACE_MB")
    if not text:
        return DEFAULT_WORKSPACE_BYTES
    try:
        megabytes = float(text)
    except ValueError:
        raise ValueError(f"USCALE_REF_WORKSPACE_MB must be a number, got {text!r}") from None
    if megabytes <= 0:
        raise ValueError(f"USCALE_REF_WORKSPACE_MB must be positive, got {text!r}")
    return int(megabytes * 2**20)


_workspace_bytes = _from_environment()


def get_workspace_bytes() -> int:
    """The current workspace bound in bytes."""
    return _workspace_bytes


def set_workspace_bytes(nbytes: int) -> int:
    """Set the workspace bound (bytes, at least 1); return the previous value."""
    global _workspace_bytes
    if isinstance(nbytes, bool) or not isinstance(nbytes, int):
        raise TypeError(f"nbytes must be an int, got {type(nbytes).__name__}")
    if nbytes < 1:
        raise ValueError(f"nbytes must be >= 1, got {nbytes}")
    previous, _workspace_bytes = _workspace_bytes, nbytes
    return previous


@contextmanager
def workspace(nbytes: int) -> Iterator[None]:
    """Temporarily use another workspace bound.

    >>> with workspace(2**20):
    ...     get_workspace_bytes()
    1048576
    """
    previous = set_workspace_bytes(nbytes)
    try:
        yield
    finally:
        set_workspace_bytes(previous)
