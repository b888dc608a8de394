"""Fixtures for your own shapes: CaseSpec, the case lists, generate --case, own suites, the runner.

A kernel tiles its channels and lengths; the committed suite is small. These
tests hold the routes a user takes to fixtures at their own sizes: one
command, one call, and a folder that works everywhere the committed one does.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from independent import Kernel

import uscale_ref
from uscale_ref import golden
from uscale_ref.cli import main
from uscale_ref.golden import CaseSpec
from uscale_ref.golden.caselist import parse_case, read_cases
from uscale_ref.golden.fixture import spec_from_metadata
from uscale_ref.golden.store import Progress, spec_for
from uscale_ref.testing import assert_conv1d

RIGHT = Kernel()


# -- CaseSpec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "pattern"),
    [
        ({"dtype": "float8"}, ValueError, "dtype must be one of"),
        ({"kernel_size": 0}, ValueError, "kernel_size must be an integer of at least 1"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"in_channels": 6, "groups": 4}, ValueError, "groups=4 must divide"),
        ({"padding": "same", "stride": 2}, ValueError, "stride"),
        ({"length": 2, "kernel_size": 5}, ValueError, "kernel"),
        ({"constraint": "pow"}, ValueError, "constraint must be one of"),
        ({"scale_power": (1.0, 2.0)}, ValueError, "scale_power"),
        ({"fp8": True, "dtype": "float64"}, ValueError, "fp8"),
        ({"bias": 1}, TypeError, "bias must be True or False"),
        ({"suite": ""}, ValueError, "suite"),
    ],
)
def test_a_spec_is_checked_when_made(fields, error, pattern):
    with pytest.raises(error, match=pattern):
        CaseSpec(**{"dtype": "float32", "kernel_size": 3, **fields})


def test_every_committed_case_reads_back_its_spec():
    for case_id in golden.cases():
        fixture = golden.load(case_id)
        assert fixture.spec == spec_for(case_id)
        assert fixture.spec.id == case_id
        assert fixture.spec.suite == "standard"


def test_a_metadata_that_describes_no_case_is_a_golden_file_error():
    metadata = golden.load("f64_k3").metadata
    broken = {**metadata, "arguments": {**metadata["arguments"], "groups": 5}}
    with pytest.raises(golden.GoldenFileError, match="no valid case"):
        spec_from_metadata(broken)


# -- case lists ----------------------------------------------------------------------------


def test_every_key_of_a_case_line():
    spec = parse_case(
        "dtype=complex64, N=3, C=8, L=40, O=4, K=4, stride=(2,), padding=(1,), dilation=2, "
        "groups=2, bias=false, constraint=None, scale_power=1:0.25:0.75"
    )
    assert spec == CaseSpec(
        dtype="complex64", kernel_size=4, batch_size=3, in_channels=8, out_channels=4,
        length=40, stride=(2,), padding=(1,), dilation=2, groups=2, bias=False,
        constraint=None, scale_power=(1.0, 0.25, 0.75),
    )  # fmt: skip
    assert parse_case("batched=false,padding=same,K=4").batch_size is None
    assert parse_case("fp8=true").fp8
    assert parse_case("").id == "f32_k3"  # every key has a default


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("K=three", "'K'"),
        ("colour=red", "'colour'"),
        ("padding=middle", "'padding'"),
        ("bias=maybe", "'bias'"),
        ("scale_power=0.5:0.5", "'scale_power'"),
        ("stride=(2,3)", "'stride'"),
        ("K=3,K=4", "'K'"),
        ("batched=false,N=2", "'N'"),
        ("K", "key=value"),
    ],
)
def test_a_bad_case_line_names_its_key(text, key):
    with pytest.raises(ValueError, match=key):
        parse_case(text)


def test_case_files_in_json_and_toml(tmp_path):
    json_file = tmp_path / "cases.json"
    json_file.write_text(json.dumps({"cases": [
        {"dtype": "float64", "C": 8, "O": 8, "K": 5, "padding": "same", "constraint": None},
        {"K": 3, "stride": [2], "scale_power": [1, 0.25, 0.75]},
    ]}))  # fmt: skip
    toml_file = tmp_path / "cases.toml"
    toml_file.write_text(
        '[[case]]\ndtype = "float64"\nC = 8\nO = 8\nK = 5\npadding = "same"\n'
        'constraint = "None"\n\n[[case]]\nK = 3\nstride = [2]\nscale_power = "1:0.25:0.75"\n'
    )
    pytest.importorskip("tomllib")
    assert read_cases(json_file) == read_cases(toml_file)
    assert [spec.id for spec in read_cases(json_file)] == [
        "f64_c8o8_same_k5_none", "f32_st2_k3_pw1-0.25-0.75",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "pattern"),
    [
        ("cases.json", "{}", "non-empty list"),
        ("cases.json", "[1]", "case 1 must be a table"),
        ("cases.json", "[{", "not readable as json"),
        ("cases.json", '[{"K": 0}]', "case 1: kernel_size"),
        ("cases.yaml", "[]", "must end in .json or .toml"),
    ],
)
def test_bad_case_files(tmp_path, name, text, pattern):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        read_cases(path)


def test_an_oversized_case_file_is_refused(tmp_path):
    path = tmp_path / "cases.json"
    with open(path, "wb") as stream:
        stream.truncate(2**21)
    with pytest.raises(golden.GoldenFileError, match="larger than"):
        read_cases(path)


# -- one command ---------------------------------------------------------------------------


def test_generate_own_cases_then_verify_check_and_load(tmp_path, capsys):
    out = tmp_path / "mine"
    line = "dtype=float32,N=2,C=16,L=200,O=16,K=9,padding=same"
    assert main(["golden", "generate", "--out", str(out), "--case", line, "--case", "K=2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["suite"] == "custom"
    assert [e["id"] for e in manifest["cases"]] == ["f32_c16o16l200_same_k9", "f32_k2"]
    assert main(["golden", "verify", str(out)]) == 0
    # merging one more case keeps the others
    assert main(["golden", "generate", "--out", str(out), "--case", "dtype=float64,K=1"]) == 0
    assert len(json.loads((out / "manifest.json").read_text())["cases"]) == 3
    assert golden.verify(out) == []
    results = tmp_path / "results"
    results.mkdir()
    for case_id in ("f32_c16o16l200_same_k9", "f64_k1"):
        case = golden.load(case_id, out)
        x, w, b, g = case.inputs.values()
        grads = uscale_ref.conv1d_backward(g, x, w, b, **case.kwargs)
        np.savez(results / f"{case_id}.npz", output=uscale_ref.conv1d(x, w, b, **case.kwargs),
                 **grads._asdict())  # fmt: skip
    capsys.readouterr()
    assert main(["golden", "check", str(results), "--golden", str(out), "--partial"]) == 0
    assert "check: 8 passed, 0 failed, 0 problem(s)" in capsys.readouterr().out
    assert main(["golden", "check", str(results), "--golden", str(out)]) == 1
    assert "1 of 3 cases have no results: " in capsys.readouterr().err


def test_own_suites_keep_their_name_and_refuse_mixing(tmp_path, capsys):
    out = tmp_path / "named"
    assert main(["golden", "generate", "--out", str(out), "--case", "K=3", "--name", "tiles"]) == 0
    assert golden.load("f32_k3", out).metadata["suite"] == "tiles"
    assert golden.verify(out) == []
    capsys.readouterr()
    assert main(["golden", "generate", "--out", str(out), "--case", "K=5"]) == 2
    assert "holds suite 'tiles', not 'custom'" in capsys.readouterr().err
    assert main(["golden", "generate", "--out", str(out), "--filter", "f32_k1"]) == 2


def test_a_verified_own_suite_notices_a_regenerated_lie(tmp_path):
    out = tmp_path / "mine"
    golden.generate(out, specs=[CaseSpec("float64", kernel_size=3)], progress=None)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["cases"][0]["id"] = "f64_k5"
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert any("listed as 'f64_k5'" in problem for problem in golden.verify(out))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--case", "K=3,colour=red"], "unknown key 'colour'"),
        (["--case", "K=3", "--suite", "large"], "--suite picks a built-in suite"),
        (["--name", "mine"], "--name names your own cases"),
        (["--case", "C=3,groups=2"], "groups=2 must divide"),
        (["--cases", "missing.json"], "cannot be read"),
    ],
)
def test_bad_cases_on_the_command_line_exit_2_with_one_line(tmp_path, capsys, arguments, message):
    assert main(["golden", "generate", "--out", str(tmp_path / "x"), *arguments]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "x").exists()


def test_generate_in_python_with_specs(tmp_path):
    mine = CaseSpec("complex64", kernel_size=4, in_channels=8, out_channels=4, groups=2)
    ids = golden.generate(tmp_path, specs=[mine], suite="kernels", progress=None)
    assert ids == [mine.id]
    assert golden.load(mine.id, tmp_path).spec == mine
    with pytest.raises(ValueError, match="name of their own"):
        golden.generate(tmp_path / "other", specs=[mine], suite="standard", progress=None)
    with pytest.raises(TypeError, match="CaseSpec"):
        golden.generate(tmp_path / "other", specs=["f32_k3"], progress=None)


def test_progress_estimates_the_time_left():
    stream = io.StringIO()
    progress = Progress(stream)
    progress.start -= 10.0  # ten seconds in
    progress(25.0, 100.0, "f32_big_case")
    progress(100.0, 100.0, "1 case(s) in out")
    lines = stream.getvalue().splitlines()
    assert "25%" in lines[0] and "about 30 s left" in lines[0] and "f32_big_case" in lines[0]
    assert "100%" in lines[1] and "done in 10 s" in lines[1]


# -- the runner ----------------------------------------------------------------------------


def _tile_bug(tile=64):
    """A kernel that forgets the bias in its second tile of output channels."""

    def forward(x, w, b, **kwargs):
        y = RIGHT.forward(x, w, b, **kwargs)
        if b is not None and w.shape[0] > tile:
            scale = uscale_ref.conv1d_scales(x.shape, w.shape, **kwargs).output
            y[..., tile : 2 * tile, :] -= (scale * b[tile : 2 * tile])[:, None]
        return y

    return forward


def test_a_bug_in_the_second_tile_is_caught_only_at_your_own_shape():
    forward = _tile_bug()
    assert_conv1d(forward, dtypes="float32", drawn=0)  # the committed suite misses it
    mine = CaseSpec("float32", kernel_size=9, batch_size=1, in_channels=8, out_channels=192,
                    length=300, padding="same")  # fmt: skip
    with pytest.raises(AssertionError) as failure:
        assert_conv1d(forward, cases=[mine], drawn=0)
    message = str(failure.value)
    assert "elements fail, at o in 64..127" in message


def test_runner_on_an_own_suite_folder(tmp_path):
    specs = [CaseSpec("float64", kernel_size=k, in_channels=4, out_channels=8) for k in (1, 3)]
    golden.generate(tmp_path, specs=specs, progress=None)
    report = assert_conv1d(RIGHT.forward, RIGHT.backward, golden_dir=tmp_path, drawn=0)
    assert report.cases == 2


def test_constraints_and_scale_powers_restrict_golden_and_drawn_cases():
    def default_only(x, w, b, **kwargs):
        if kwargs["constraint"] != "to_output_scale" or kwargs["scale_power"] != (0.5,) * 3:
            raise NotImplementedError("only the default scaling")
        return RIGHT.forward(x, w, b, **kwargs)

    with pytest.raises(AssertionError, match="NotImplementedError"):
        assert_conv1d(default_only, dtypes="float64", drawn=0)
    report = assert_conv1d(
        default_only, dtypes="float64", drawn=10,
        constraints=["to_output_scale"], scale_powers=[(0.5, 0.5, 0.5)],
    )  # fmt: skip
    default = [
        s for s in golden.suite.suite_specs()
        if s.dtype == "float64" and s.constraint == "to_output_scale"
        and s.scale_power == (0.5, 0.5, 0.5)
    ]  # fmt: skip
    assert report.cases == len(default) + 10


def test_select_takes_any_predicate():
    seen = []

    def forward(x, w, b, **kwargs):
        seen.append(kwargs["groups"])
        return RIGHT.forward(x, w, b, **kwargs)

    assert_conv1d(forward, dtypes="float64", drawn=5, select=lambda spec: spec.groups == 1)
    assert seen and set(seen) == {1}


def test_large_drawn_problems_cross_tiles():
    seen = []

    def forward(x, w, b, **kwargs):
        seen.append((x.shape[-2], w.shape[0], x.shape[-1], w.shape[-1]))
        return RIGHT.forward(x, w, b, **kwargs)

    assert_conv1d(forward, dtypes="float32", filter="nothing", drawn=3, sizes="large", seed=1)
    assert len(seen) == 3
    assert all(max(c, o) > 64 and length > 256 for c, o, length, _ in seen)


def test_default_dir_order(monkeypatch, tmp_path):
    from uscale_ref.golden import store

    monkeypatch.setenv("USCALE_REF_GOLDEN_DIR", str(tmp_path / "env"))
    assert golden.default_dir() == tmp_path / "env"
    monkeypatch.setenv("USCALE_REF_GOLDEN_DIR", "")
    package = tmp_path / "site" / "uscale_ref"
    (package / "golden").mkdir(parents=True)
    monkeypatch.setattr(store, "__file__", str(package / "golden" / "store.py"))
    assert golden.default_dir() == tmp_path / "site" / "golden"  # a checkout's folder
    (package / "golden_data").mkdir()
    (package / "golden_data" / "manifest.json").write_text("{}")
    assert golden.default_dir() == package / "golden_data"  # the installed suite wins


def test_the_case_lines_and_files_in_the_docs_parse(tmp_path):
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = "".join(
        p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    )
    lines = re.findall(r'--case "([^"]*)"', text)
    assert len(lines) >= 3
    for line in lines:
        parse_case(line)
    pytest.importorskip("tomllib")
    blocks = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    assert blocks
    for number, block in enumerate(blocks):
        path = tmp_path / f"cases{number}.toml"
        path.write_text(block)
        assert read_cases(path)


def test_the_plugin_runs_over_an_own_suite(pytester, tmp_path):
    folder = tmp_path / "mine"
    specs = [CaseSpec("float64", kernel_size=k, in_channels=8, out_channels=16) for k in (2, 5)]
    golden.generate(folder, specs=specs, progress=None)
    pytester.makepyfile(
        test_mine="""
        import uscale_ref

        def test_kernel(golden_case):
            x, w, b, _ = golden_case.inputs.values()
            golden_case.check(output=uscale_ref.conv1d(x, w, b, **golden_case.kwargs))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--uscale-ref-golden", str(folder), "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_kernel?f64_c8o16_k2?*PASSED*"])
