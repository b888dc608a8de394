"""Reading ``.npz`` files from elsewhere without trusting them.

A results file comes from someone else's kernel, a fixture may have been
edited or damaged on the way: neither may crash, hang, unpickle, or make
us allocate more than the arrays we expect. So, before any data is read:

- the path must be a regular file (a FIFO or ``/dev/zero`` is refused);
- it must be a ZIP archive of ``.npy`` members;
- each member's ``.npy`` header is read first: an object dtype (pickled
  data) is refused, and its shape and dtype are judged against what is
  expected, so a header declaring ``(2**40,)`` costs nothing;
- then exactly the bytes that shape needs are inflated, plus one to prove
  the member ends there (a member that would inflate further is refused),
  and the ZIP checksum is verified.

Every problem is a :class:`~uscale_ref.golden.GoldenFileError`.
"""

from __future__ import annotations

import math
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import GoldenFileError

__all__ = ["read_npz"]

# Judge a member's header before its data is read; raise GoldenFileError to refuse it.
Judge = Callable[[str, tuple[int, ...], np.dtype[Any]], None]


def _header(path: Path, name: str, stream: Any) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(stream)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(stream)
        raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise GoldenFileError(
            f"{path}: member {name!r} has no valid .npy header ({error})"
        ) from None


def read_npz(
    path: Path | str, judge: Judge, max_bytes: int, only: frozenset[str] | None = None
) -> dict[str, npt.NDArray[Any]]:
    """The members of an ``.npz`` as NumPy arrays (native byte order), read defensively.

    Parameters
    ----------
    path : path
        The file; anything but a regular file is refused.
    judge : callable
        ``judge(name, shape, dtype)`` for every member, before its data is
        read; it raises :class:`GoldenFileError` to refuse it.
    max_bytes : int
        The most data all members together may hold.
    only : set of str, optional
        Read just these members (the others are left unread).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise GoldenFileError(f"{path}: no such file") from None
    except OSError as error:
        raise GoldenFileError(f"{path}: cannot be read ({error})") from None
    if not stat.S_ISREG(mode):
        raise GoldenFileError(f"{path}: not a regular file")
    arrays: dict[str, npt.NDArray[Any]] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy") or not name or name in arrays:
                    raise GoldenFileError(f"{path}: member {info.filename!r} is not a .npy array")
                if only is not None and name not in only:
                    continue
                with archive.open(info) as stream:
                    shape, fortran, dtype = _header(path, name, stream)
                    if dtype.hasobject:
                        raise GoldenFileError(
                            f"{path}: member {name!r} holds Python objects (pickled data); refused"
                        )
                    judge(name, shape, dtype)
                    size = math.prod(shape) * dtype.itemsize
                    total += size
                    if total > max_bytes:
                        raise GoldenFileError(
                            f"{path}: its arrays would take more than {max_bytes} bytes; refused"
                        )
                    data = stream.read(size + 1)
                if len(data) != size:
                    raise GoldenFileError(
                        f"{path}: member {name!r} holds {len(data)} data bytes, "
                        f"its header says {size}"
                    )
                array = np.frombuffer(data, dtype=dtype).reshape(
                    shape, order="F" if fortran else "C"
                )
                arrays[name] = array.astype(dtype.newbyteorder("="))
    except GoldenFileError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,  # a compression method zipfile lacks
        RuntimeError,  # an encrypted member
    ) as error:
        raise GoldenFileError(f"{path}: not a readable .npz archive ({error})") from None
    return arrays
