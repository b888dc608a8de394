"""Settings: the workspace bound.

The kernels process the length axis in blocks so that the temporary memory of
one call stays within a fixed *workspace* beyond its inputs and outputs (plus
one output-sized copy where blocks are joined). The default is 64 MiB; set the
environment variable ``USCALE_REF_WORKSPACE_MB`` or call
:func:`set_workspace_bytes` (or use :func:`workspace`) to change it.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "DEFAULT_WORKSPACE_BYTES",
    "environment_problem",
    "get_workspace_bytes",
    "set_workspace_bytes",
    "workspace",
]

DEFAULT_WORKSPACE_BYTES = 64 * 2**20


VARIABLE = "USCALE_REF_WORKSPACE_MB"


def _parse_megabytes(text: str) -> int:
    """Bytes from the variable's text: a finite number of MiB giving at least one byte."""
    try:
        megabytes = float(text)
    except ValueError:
        raise ValueError(f"{VARIABLE} must be a number of MiB, got {text!r}") from None
    if not math.isfinite(megabytes) or megabytes <= 0:
        raise ValueError(f"{VARIABLE} must be a positive, finite number of MiB, got {text!r}")
    nbytes = int(megabytes * 2**20)
    if nbytes < 1:
        raise ValueError(f"{VARIABLE} must be at least one byte (1e-6 MiB), got {text!r}")
    if nbytes > 2**62:
        raise ValueError(f"{VARIABLE} must be at most 2**42 MiB, got {text!r}")
    return nbytes


def environment_problem() -> str | None:
    """What is wrong with ``$USCALE_REF_WORKSPACE_MB`` (None when unset or valid)."""
    text = os.environ.get(VARIABLE)
    if not text:
        return None
    try:
        _parse_megabytes(text)
    except ValueError as error:
        return str(error)
    return None


def _from_environment() -> int:
    """The workspace set by the environment; a bad value warns and keeps the default.

    Importing must never fail because of a setting: the warning names the
    variable, and the CLI refuses to start with the same message.
    """
    text = os.environ.get(VARIABLE)
    if not text:
        return DEFAULT_WORKSPACE_BYTES
    try:
        return _parse_megabytes(text)
    except ValueError as error:
        warnings.warn(f"{error}; using the default 64 MiB", stacklevel=2)
        return DEFAULT_WORKSPACE_BYTES


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
