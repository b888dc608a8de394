"""uscale_ref.testing: a correct independent kernel passes; each classic mistake is named."""

from __future__ import annotations

import numpy as np
import pytest
from independent import Kernel

from uscale_ref import golden
from uscale_ref.testing import assert_conv1d


def test_a_correct_independent_kernel_passes_and_reports_its_accuracy():
    kernel = Kernel()
    report = assert_conv1d(kernel.forward, kernel.backward, drawn=10)
    numpy_cases = golden.cases(dtype=["float16", "float32", "float64", "complex64", "complex128"])
    assert report.cases == len(numpy_cases) + 10  # every NumPy-dtype case, then the drawn ones
    text = str(report)
    assert "float16" in text and "grad_weight" in text and "largest" in text
    assert all(max(v) < 64 for v in report.units.values())


MISTAKES = [
    ("padding side", "*_same_k4", "put on the left"),
    ("dgrad conjugate", "c128_*", "missing complex conjugate in dgrad"),
    ("wgrad conjugate", "c128_*", "missing complex conjugate in wgrad"),
    ("constraint", "f64_k3", "a different constraint: 'gmean'"),
    ("flipped kernel", "f64_k3", "the kernel flipped"),
    ("bias after scale", "f64_k3", "the bias added after the output scale"),
    ("group order", "f64_g2_k3", "groups' channel order"),
    ("shift", "f64_k3", "the output shifted by one position"),
    ("swap", "f64_s3_d2_p2_k4", "stride and dilation roles not swapped in wgrad"),
    ("forward conjugate", "c128_k3", "an extra complex conjugate in the forward pass"),
    ("grad_weight scale missing", "f64_k3", "the grad_weight scale missing"),
    ("output scale twice", "f64_p2_k5", "the output scale applied twice"),
]


@pytest.mark.parametrize(("mistake", "pattern", "named"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_classic_mistake_is_named(mistake, pattern, named):
    kernel = Kernel(mistake)
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(kernel.forward, kernel.backward, filter=pattern, drawn=0)
    message = str(failure.value)
    causes = [line for line in message.splitlines() if "likely cause:" in line]
    assert causes and all(named in line for line in causes), causes


def test_an_unexplained_failure_says_so():
    kernel = Kernel()

    def noisy(*args, **kwargs):
        y = kernel.forward(*args, **kwargs)
        return y + np.asarray(1e-3, dtype=y.dtype) * np.sign(y)

    with pytest.raises(AssertionError, match="no single known mistake explains this"):
        assert_conv1d(noisy, filter="f64_k3", drawn=0)


def test_a_kernel_that_raises_is_a_finding():
    def broken(*args, **kwargs):
        raise RuntimeError("not implemented for groups")

    with pytest.raises(AssertionError, match="the kernel raised RuntimeError: not implemented"):
        assert_conv1d(broken, filter="f32_k3", drawn=0)


def test_torch_kernel_without_conversion_boilerplate():
    torch = pytest.importorskip("torch")
    unit_scaling = pytest.importorskip("unit_scaling.functional")

    def forward(x, w, b, **kwargs):
        return unit_scaling.conv1d(x, w, b, **kwargs)

    report = assert_conv1d(
        forward, dtypes=["float64"], filter="f64_k*", drawn=0,
        to_array=lambda a, dtype: torch.tensor(a),
    )  # fmt: skip
    assert report.cases >= 2


def test_cli_check_names_the_cause(tmp_path, capsys):
    from uscale_ref.cli import main

    kernel = Kernel("flipped kernel")
    for case_id in golden.cases(dtype="float64", filter="f64_*k3"):
        case = golden.load(case_id)
        x, w, b, _ = (case.inputs[n] for n in ("input", "weight", "bias", "grad_output"))
        np.savez(tmp_path / f"{case_id}.npz", output=kernel.forward(x, w, b, **case.kwargs))
    assert main(["golden", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "likely cause: the kernel flipped" in out
    assert "every failing case is explained by one mistake: the kernel flipped" in out


def test_pytest_plugin_in_a_fresh_project(pytester):
    pytester.makepyfile(
        test_kernel="""
        import pytest
        import uscale_ref

        @pytest.mark.uscale_ref_golden(dtype="float64", filter="*_same_*")
        def test_good(golden_case):
            y = uscale_ref.conv1d(golden_case.inputs["input"], golden_case.inputs["weight"],
                                  golden_case.inputs["bias"], **golden_case.kwargs)
            golden_case.check(output=y)

        @pytest.mark.uscale_ref_golden(dtype="float64", filter="f64_k3")
        def test_flipped(golden_case):
            w = golden_case.inputs["weight"][..., ::-1]
            y = uscale_ref.conv1d(golden_case.inputs["input"], w.copy(),
                                  golden_case.inputs["bias"], **golden_case.kwargs)
            golden_case.check(output=y)
        """
    )
    result = pytester.runpytest("-v")  # the plugin loads through its pytest11 entry point
    result.assert_outcomes(passed=len(golden.cases(dtype="float64", filter="*_same_*")), failed=1)
    result.stdout.fnmatch_lines(
        ["*test_good?f64_same_k3?*PASSED*", "*likely cause: the kernel flipped*"]
    )
    # The failure shows the test's own line and the message, not the library's source.
    result.stdout.no_fnmatch_line("*def check(*")
    result.stdout.no_fnmatch_line("*raise AssertionError*")


def test_a_failing_assert_conv1d_shows_the_message_not_the_library(pytester):
    pytester.makepyfile(
        test_kernel="""
        import uscale_ref
        from uscale_ref.testing import assert_conv1d

        def test_scaled():
            def forward(x, w, b, **kwargs):
                return uscale_ref.conv1d(x, w, b, **kwargs) * 2
            assert_conv1d(forward, filter="f64_k3", drawn=0)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*likely cause: output: off by a factor 2 *"])
    result.stdout.no_fnmatch_line("*def assert_conv1d(*")
    result.stdout.no_fnmatch_line("*raise AssertionError*")


def test_strategies_draw_valid_problems():
    from hypothesis import given, settings

    from uscale_ref import conv1d
    from uscale_ref.testing.strategies import problems

    @settings(max_examples=20, deadline=None)
    @given(problems(dtypes=["float64"]))
    def check(case):
        y = conv1d(case.inputs["input"], case.inputs["weight"], case.inputs["bias"], **case.kwargs)
        golden.assert_matches(case, output=y)

    check()


def test_jax_kernel_example_from_the_docs():
    """The JAX example of docs/testing-your-kernel.md (CI runs the JAX tests by this name)."""
    pytest.importorskip("jax")
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "testing-your-kernel.md").read_text()
    block = next(b for b in page.split("```python")[1:] if "def test_jax_kernel" in b)
    namespace: dict = {}
    exec(compile(block.split("```")[0], "testing-your-kernel.md", "exec"), namespace)
    namespace["test_jax_kernel"]()


def test_own_cases_catch_a_bug_the_standard_suite_cannot_reach():
    """A kernel wrong only in its second 64-channel tile passes every committed case."""
    kernel = Kernel()

    def tiled(*args, **kwargs):
        y = np.array(kernel.forward(*args, **kwargs))
        if y.shape[-2] > 64:
            y[..., 64:, :] *= 1 + 2.0**-10  # the second tile of output channels
        return y

    assert_conv1d(tiled, kernel.backward, filter="f32_*", drawn=0)
    spec = golden.CaseSpec(dtype="float32", kernel_size=3, batch_size=1, in_channels=8,
                           out_channels=128, length=300, padding="same", suite="mine")  # fmt: skip
    with pytest.raises(AssertionError, match="f32_n1c8o128l300_same_k3"):
        assert_conv1d(tiled, kernel.backward, cases=[spec], drawn=0)
    report = assert_conv1d(kernel.forward, kernel.backward, cases=[spec, "f64_k3"], drawn=0)
    assert report.cases == 2
    with pytest.raises(TypeError, match="cases must hold CaseSpec"):
        assert_conv1d(kernel.forward, kernel.backward, cases=[3], drawn=0)
