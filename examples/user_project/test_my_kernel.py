"""How a kernel author tests with uscale_ref, from an installed package: runner and plugin.

pip install uscale-ref[test]
python -m pytest test_my_kernel.py
"""

from __future__ import annotations

import pytest
from my_kernel import my_conv1d, my_conv1d_backward

from uscale_ref import golden
from uscale_ref.testing import assert_conv1d


def test_every_golden_case_and_drawn_problems():
    report = assert_conv1d(my_conv1d, my_conv1d_backward, drawn=5)
    print(report)


@pytest.mark.uscale_ref_golden(dtype="float32", filter="*_same_*")
def test_one_case_at_a_time(golden_case):
    x, w, b, _ = golden_case.inputs.values()
    golden_case.check(output=my_conv1d(x, w, b, **golden_case.kwargs))


def test_at_my_own_shape():
    mine = golden.CaseSpec("float32", kernel_size=9, batch_size=2, in_channels=32,
                           out_channels=192, length=512, padding="same")  # fmt: skip
    assert_conv1d(my_conv1d, my_conv1d_backward, cases=[mine], drawn=0)


def test_the_suite_is_installed():
    assert len(golden.cases()) == 203
    assert golden.verify() == []
