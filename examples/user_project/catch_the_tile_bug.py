"""Fixtures at your own shape catch what the committed suite misses.

With the tile bug of ``my_kernel.py`` switched on, this script checks that
the committed suite passes the kernel, writes one fixture at a real layer's
shape with one command, and checks that it catches the bug and says where:

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


def main() -> int:
    folder = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()
    assert_conv1d(my_conv1d, my_conv1d_backward, dtypes="float32", drawn=0)
    print("the committed float32 suite passes the buggy kernel")
    command = ["golden", "generate", "--out", folder, "--case", CASE]
    print("$ uscale-ref", " ".join(command), flush=True)
    subprocess.run([sys.executable, "-m", "uscale_ref", *command], check=True)
    try:
        assert_conv1d(my_conv1d, my_conv1d_backward, golden_dir=folder, drawn=0)
    except AssertionError as failure:
        message = str(failure)
        print(message.splitlines()[1])
        return 0 if "at o in 64..127" in message else 1
    print("the fixture at the layer's own shape missed the bug")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
