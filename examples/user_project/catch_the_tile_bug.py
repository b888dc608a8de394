"""Fixtures at your own shape catch what the committed suite misses.

With the tile bug of ``my_kernel.py`` switched on, this script checks that
the committed suite passes the kernel, writes one fixture at a real layer's
shape with one command, and checks that it catches the bug and says where;
then does the same with a compact fixture of that shape (a megabyte instead
of hundreds):

    python catch_the_tile_bug.py [FOLDER]

Exit status 0 when all of that holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

os.environ["MY_KERNEL_TILE_BUG"] = "1"

from my_kernel import my_conv1d, my_conv1d_backward

from uscale_ref.testing import assert_conv1d

CASE = "dtype=float32,N=8,C=256,L=4096,O=256,K=9,padding=same"


def caught(folder: str, extra: list[str]) -> bool:
    """Write the layer's fixture into ``folder`` and say whether it catches the bug."""
    command = ["golden", "generate", "--out", folder, "--case", CASE, *extra]
    print("$ uscale-ref", " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "uscale_ref", *command], check=True)
    try:
        assert_conv1d(my_conv1d, my_conv1d_backward, golden_dir=folder, drawn=0)
    except AssertionError as failure:
        message = str(failure)
        print(message.splitlines()[1])
        cause = "likely cause: output at o in 64..127: the bias left out of the output"
        print(next(line.strip() for line in message.splitlines() if "likely cause" in line))
        return "at o in 64..127" in message and cause in message
    print("the fixture at the layer's own shape missed the bug")
    return False


def main() -> int:
    folder = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    assert_conv1d(my_conv1d, my_conv1d_backward, dtypes="float32", drawn=0)
    print("the committed float32 suite passes the buggy kernel")
    whole = caught(os.path.join(folder, "whole"), [])
    compact = caught(os.path.join(folder, "compact"), ["--compact", "20000"])
    return 0 if whole and compact else 1


if __name__ == "__main__":
    raise SystemExit(main())
