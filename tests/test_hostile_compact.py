"""Hostile compact fixtures, folders, pictures and sweeps: refused by name, never judged.

A compact fixture says how large its layer is and where it keeps its
values; a reader believes neither until the case's id, arguments and
seeds agree, and never allocates what a file merely declares.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from uscale_ref import golden
from uscale_ref.cli import main
from uscale_ref.golden.fixture import read, sha256
from uscale_ref.golden.suite import CaseSpec

SPEC = CaseSpec("float32", kernel_size=3, batch_size=2, in_channels=8, out_channels=8,
                length=64, padding="same", compact=40)  # fmt: skip


@pytest.fixture(scope="module")
def compact(tmp_path_factory):
    """A one-case compact golden folder and its fixture's path."""
    folder = tmp_path_factory.mktemp("compact")
    golden.generate(folder, specs=[SPEC], progress=None)
    return folder, folder / f"{SPEC.id}.npz"


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _metadata(members):
    from io import BytesIO

    return json.loads(np.lib.format.read_array(BytesIO(members["metadata.npy"])).tobytes())


def _npy(array):
    from io import BytesIO

    buffer = BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _tampered(tmp_path, compact, edit_metadata=None, arrays=None):
    """A copy of the compact folder whose fixture's metadata or arrays were edited, with the
    manifest's sha256 updated to match (as a careful forger would)."""
    folder, path = compact
    members = _members(path)
    if edit_metadata is not None:
        metadata = _metadata(members)
        edit_metadata(metadata)
        text = json.dumps(metadata).encode()
        members["metadata.npy"] = _npy(np.frombuffer(text, dtype=np.uint8))
    for name, array in (arrays or {}).items():
        members[f"{name}.npy"] = _npy(array)
    out = tmp_path / "golden"
    out.mkdir()
    target = out / path.name
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["cases"][0]["sha256"] = sha256(target.read_bytes())
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out, target


def _set(path, value):
    def edit(metadata):
        node = metadata
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


BAD_METADATA = {
    "a gigantic length": (_set(("shapes", "input"), [2, 8, 2**40]), "metadata"),
    "a gigantic length, id to match": (
        lambda m: (
            _set(("shapes", "input"), [2, 8, 2**34])(m),
            m.update(id=m["id"].replace("l64", f"l{2**34}")),
        ),
        "metadata",
    ),
    "format_version 99": (_set(("format_version",), 99), "format_version"),
    "format_version true": (_set(("format_version",), True), "format_version"),
    "seeds of another case": (_set(("seeds", "input"), 12345), "seeds"),
    "another scale": (_set(("scales", "output"), 0.5), "scales"),
    "fewer terms": (_set(("tolerance", "terms", "grad_weight"), 1), "terms"),
    "no positions": (_set(("compact", "counts", "output"), 0), "counts"),
    "an id of another case": (_set(("id",), "f32_k3"), "id"),
    "a huge bias centre": (_set(("tolerance", "bias", "centres", "output"), [0.5]), "centres"),
    "a budget of 10**12 positions, id to match": (
        lambda m: (
            _set(("compact", "positions"), 10**12)(m),
            m.update(id=m["id"].replace("compact40", "compact1000000000000")),
        ),
        "counts",
    ),
}


@pytest.mark.parametrize("edit", list(BAD_METADATA), ids=list(BAD_METADATA))
def test_tampered_compact_metadata_is_refused_by_every_reader(tmp_path, compact, edit):
    change, word = BAD_METADATA[edit]
    folder, path = _tampered(tmp_path, compact, change)
    with pytest.raises(golden.GoldenFileError, match=word):
        read(path)
    with pytest.raises(golden.GoldenFileError, match=str(path.name)):
        golden.load(SPEC.id, folder)
    problems = golden.verify(folder)
    assert problems and str(path.name) in problems[0]


def test_the_manifests_format_version_must_be_known(tmp_path, compact):
    folder, _ = compact
    for version in (99, True, None, "2"):
        out = tmp_path / f"v{version}"
        out.mkdir()
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["format_version"] = version
        (out / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(golden.GoldenFileError, match="format_version"):
            golden.cases(golden_dir=out)


BAD_ARRAYS = {
    "empty positions": lambda f: {"positions_output": np.zeros(0, np.int64)},
    "other positions": lambda f: {"positions_output": f.positions("output") + 1},
    "NaN error scales": lambda f: {"error_scale_output": np.full_like(
        f.error_scale("output"), np.nan)},
    "inf error scales": lambda f: {"error_scale_output": np.full_like(
        f.error_scale("output"), np.inf)},
    "negative error scales": lambda f: {"error_scale_output": -f.error_scale("output")},
    "NaN expected values": lambda f: {"output": np.full_like(f.expected["output"], np.nan)},
}  # fmt: skip


@pytest.mark.parametrize("edit", list(BAD_ARRAYS), ids=list(BAD_ARRAYS))
def test_damaged_compact_arrays_never_pass_a_kernel(tmp_path, compact, edit, capsys):
    fixture = read(compact[1])
    arrays = BAD_ARRAYS[edit](fixture)
    if edit == "empty positions":  # with counts to match: the file is otherwise consistent
        folder, path = _tampered(tmp_path, compact, _set(("compact", "counts", "output"), 0),
                                 {**arrays, "output": np.zeros(0, np.float32),
                                  "error_scale_output": np.zeros(0)})  # fmt: skip
    else:
        folder, path = _tampered(tmp_path, compact, None, arrays)
    with pytest.raises(golden.GoldenFileError, match=path.name):
        read(path)
    results = tmp_path / "results"
    results.mkdir()
    zeros = np.zeros(SPEC.geometry.output_shape, np.float32)
    np.savez(results / f"{SPEC.id}.npz", output=zeros)
    assert main(["golden", "check", str(results), "--golden", str(folder)]) == 1
    captured = capsys.readouterr()
    assert path.name in captured.err and "passed, 0 failed" in captured.out
    assert "1 passed" not in captured.out


def test_a_genuine_compact_fixture_still_reads(compact):
    fixture = read(compact[1])
    assert fixture.compact and fixture.positions("output").size == 40
    assert golden.verify(compact[0]) == []


# -- what a compact fixture would make a reader allocate ----------------------------------------


def test_a_case_beyond_addressable_sizes_is_refused():
    with pytest.raises(ValueError, match="2\\*\\*40 elements"):
        CaseSpec("float32", batch_size=2**20, in_channels=2**20, length=2**10, compact=10)
    with pytest.raises(ValueError, match="in_channels must be at most 2\\*\\*24"):
        CaseSpec("float32", batch_size=1, in_channels=2**30, length=4, compact=10)


def test_positions_of_a_very_long_layer_list_only_the_edges_they_keep():
    from uscale_ref.golden.positions import edge_values, positions_for

    # Listing every edge of these axes would not end in a lifetime.
    assert edge_values(2**62, limit=9) == [0, 1, 2, 2**62 - 1, 2**62 - 2, 2**62 - 3,
                                           255, 256, 257]  # fmt: skip
    spec = CaseSpec("float32", kernel_size=9, batch_size=1, in_channels=4, out_channels=4,
                    length=2**36, compact=20000)  # fmt: skip
    for name in ("output", "grad_input", "grad_weight", "grad_bias"):
        kept = positions_for(spec, name, 20000)
        assert 0 < kept.size <= 20000 and np.all(np.diff(kept) > 0)


@pytest.fixture
def little_memory(monkeypatch):
    """A machine with 1 MiB available."""
    import uscale_ref.golden.resources as resources

    monkeypatch.setattr(resources, "memory_available", lambda: 2**20)


def test_a_compact_case_too_large_to_run_is_refused_not_blamed_on_the_kernel(
    compact, little_memory, monkeypatch
):
    from uscale_ref.testing import assert_conv1d

    called = []

    def forward(*args, **kwargs):
        called.append(1)
        raise MemoryError

    with pytest.raises(ValueError, match=f"case {SPEC.id}: running a kernel on it needs about"):
        assert_conv1d(forward, golden_dir=compact[0], drawn=0)
    assert not called
    import uscale_ref.golden.resources as resources

    monkeypatch.setattr(resources, "memory_available", lambda: 1000)  # below the 4 kB input
    with pytest.raises(ValueError, match="drawing its whole input"):
        read(compact[1]).inputs  # noqa: B018


def test_verify_says_a_case_cannot_be_regenerated_here(compact, little_memory):
    (problem,) = golden.verify(compact[0])
    assert "cannot be regenerated here" in problem and "memory" in problem


def test_check_refuses_a_results_file_it_cannot_hold(tmp_path, compact, monkeypatch, capsys):
    results = tmp_path / "results"
    results.mkdir()
    np.savez(results / f"{SPEC.id}.npz", output=np.zeros(SPEC.geometry.output_shape, np.float32))
    import uscale_ref.golden.resources as resources

    monkeypatch.setattr(resources, "memory_available", lambda: 1000)  # below the 4 kB output
    assert main(["golden", "check", str(results), "--golden", str(compact[0])]) == 1
    assert "this machine has" in capsys.readouterr().err


def test_each_call_gets_its_own_inputs():
    from uscale_ref import conv1d, conv1d_backward
    from uscale_ref.testing import assert_conv1d

    def forward(x, w, b, **kwargs):
        y = conv1d(x, w, b, **kwargs)
        x[...] = 0  # scratch space, after computing
        w[...] = 0
        return y

    def backward(g, x, w, b, **kwargs):
        grads = conv1d_backward(g, x, w, b, **kwargs)
        x[...] = 0
        g[...] = 0
        return grads

    assert_conv1d(forward, backward, dtypes="float64", drawn=2, filter="f64_k3")


# -- folders and special files ------------------------------------------------------------------


def test_a_crowded_results_folder_is_refused_unscanned(tmp_path, compact, capsys):
    from uscale_ref.verdict import directory

    results = tmp_path / "results"
    results.mkdir()
    for number in range(directory.MAX_RESULT_FILES + 1):
        (results / f"r{number}.npz").touch()
    assert main(["golden", "check", str(results), "--golden", str(compact[0])]) == 2
    assert "holds more than 10,000 entries" in capsys.readouterr().err


def test_unknown_ids_are_told_without_reading_the_manifest_again(tmp_path, compact, monkeypatch):
    import uscale_ref.golden.store as store

    results = tmp_path / "results"
    results.mkdir()
    for number in range(50):
        (results / f"nope{number}.npz").touch()
    reads = []
    original = store._read_manifest
    monkeypatch.setattr(store, "_read_manifest", lambda d: reads.append(d) or original(d))
    _, problems = golden.check_directory(results, compact[0], partial=True)
    assert len(problems) == 50 and all("unknown golden case id" in p for p in problems)
    assert len(reads) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_cases_file_that_is_a_fifo_is_refused_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "cases.json"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    out = tmp_path / "out"
    assert main(["golden", "generate", "--out", str(out), "--cases", str(fifo)]) == 2
    assert "not a regular file" in capsys.readouterr().err and not out.exists()


# -- pictures -----------------------------------------------------------------------------------


def _failing_results(tmp_path, compact):
    fixture = read(compact[1])
    results = tmp_path / "results"
    results.mkdir()
    output = np.zeros(SPEC.geometry.output_shape, np.float32).reshape(-1)
    output[fixture.positions("output")] = fixture.expected["output"] * 1.01
    np.savez(results / f"{SPEC.id}.npz", output=output.reshape(SPEC.geometry.output_shape))
    return results


def test_plot_onto_a_file_names_the_option(tmp_path, compact, capsys):
    pytest.importorskip("matplotlib")
    results = _failing_results(tmp_path, compact)
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    code = main(["golden", "check", str(results), "--golden", str(compact[0]),
                 "--plot", str(taken)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--plot" in err and "not a folder" in err and "Errno" not in err
    assert taken.read_bytes() == b"mine"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_plot_into_an_unwritable_folder_names_the_option(tmp_path, compact, capsys):
    pytest.importorskip("matplotlib")
    results = _failing_results(tmp_path, compact)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code = main(["golden", "check", str(results), "--golden", str(compact[0]),
                 "--plot", str(locked / "pictures")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--plot" in err and "cannot write pictures there" in err


def test_plot_into_a_folder_the_process_cannot_create_names_the_option(tmp_path, compact, capsys):
    pytest.importorskip("matplotlib")
    results = _failing_results(tmp_path, compact)
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["golden", "check", str(results), "--golden", str(compact[0]),
                 "--plot", str(blocker / "pictures")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--plot" in err and "cannot write pictures there" in err


@pytest.mark.parametrize("case_id", ["../../outside", "/abs/path", r"\frac{$x", "a:b", "..", ""])
def test_picture_names_stay_in_their_folder(tmp_path, case_id):
    pytest.importorskip("matplotlib")
    from uscale_ref.verdict import judge
    from uscale_ref.verdict.picture import picture_name

    fixture = golden.load("f32_k3")
    verdict = judge(fixture, {k: v * 1.01 for k, v in fixture.expected.items()})
    verdict.case_id = case_id  # drawn as plain text, whatever it holds
    folder = tmp_path / "pictures"
    folder.mkdir()
    name = picture_name(case_id)
    assert "/" not in name and not name.startswith(".")
    picture = verdict.plot(folder / name)
    assert picture.parent == folder and picture.exists()
    assert picture_name(case_id) != picture_name(case_id + "x")


def test_the_plugin_refuses_a_picture_folder_that_is_a_file(pytester):
    pytest.importorskip("matplotlib")
    pytester.makepyfile("def test_nothing(golden_case): pass")
    taken = pytester.path / "taken.png"
    taken.write_bytes(b"mine")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--uscale-ref-plot={taken}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--uscale-ref-plot*not a folder*"])
    assert taken.read_bytes() == b"mine"


def test_the_plugin_draws_a_hostile_case_id_inside_its_folder(pytester, tmp_path):
    pytest.importorskip("matplotlib")
    from uscale_ref.testing.plugin import GoldenCase

    fixture = golden.load("f32_k3")
    plots = tmp_path / "plots"
    case = GoldenCase("../../escaped", None, str(plots))
    case._fixture = fixture  # the id is hostile; the fixture is a real one
    with pytest.raises(AssertionError, match="picture: "):
        case.check(output=fixture.expected["output"] * 2)
    assert (
        not (tmp_path / "escaped.png").exists() and not (tmp_path.parent / "escaped.png").exists()
    )
    (picture,) = plots.iterdir()
    assert picture.name.startswith("escaped-") and picture.suffix == ".png"
