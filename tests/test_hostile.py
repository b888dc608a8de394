"""Hostile inputs and files: every outcome is a clean, named error or a correct answer.

Results files and fixtures come from other people's code; arguments come
from other people's test suites. Nothing here may crash with a foreign
exception, hang, unpickle, or allocate more than the arrays it expects.
"""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uscale_ref
from uscale_ref import golden
from uscale_ref.cli import main

CASE = "f32_g2_k3"


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    """A one-case golden folder, its fixture's bytes and a correct results file's bytes."""
    folder = tmp_path_factory.mktemp("golden")
    golden.generate(folder, dtypes=["float32"], pattern=CASE, progress=None)
    case = golden.load(CASE, folder)
    buffer = io.BytesIO()
    np.savez(buffer, **case.expected)
    return folder, (folder / f"{CASE}.npz").read_bytes(), buffer.getvalue()


def _results(tmp_path, data, name=CASE):
    folder = tmp_path / "results"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.npz").write_bytes(data)
    return folder


def _npy(array=None, header_shape=None, dtype="<f4", payload=None):
    """The bytes of an .npy member; its header may lie about the shape."""
    buffer = io.BytesIO()
    array = np.zeros(3, dtype=dtype) if array is None else array
    header = {"descr": dtype, "fortran_order": False, "shape": header_shape or array.shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    buffer.write(array.tobytes() if payload is None else payload)
    return buffer.getvalue()


def _zip(members, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _with_peak(function, *args):
    """``function(*args)`` and the peak of memory traced while it ran."""
    tracemalloc.start()
    try:
        result = function(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _check(tmp_path, suite, data, name=CASE):
    folder, _, _ = suite
    return golden.check_directory(_results(tmp_path, data, name), folder)


# -- results files ---------------------------------------------------------------------------


def test_correct_results_pass(tmp_path, suite):
    reports, problems = _check(tmp_path, suite, suite[2])
    assert not problems and reports and all(v.passed for v in reports)


@pytest.mark.parametrize("cut", [0, 10, 100, -1])
def test_truncated_results_are_a_problem_not_a_crash(tmp_path, suite, cut):
    reports, problems = _check(tmp_path, suite, suite[2][:cut])
    assert not reports and len(problems) == 1


def test_crc_corruption_is_a_problem(tmp_path, suite):
    data = bytearray(suite[2])
    data[len(data) // 2] ^= 0xFF  # inside a stored member's data: only the CRC can tell
    _, problems = _check(tmp_path, suite, bytes(data))
    assert problems and ("CRC" in problems[0] or "not a readable" in problems[0])


def test_a_huge_declared_shape_is_refused_from_its_header(tmp_path, suite):
    data = _zip({"output.npy": _npy(header_shape=(2**40,), payload=b"")})
    (_, problems), peak = _with_peak(_check, tmp_path, suite, data)
    assert "has shape (1099511627776,)" in problems[0]
    assert peak < 2**24


def test_a_deflate_bomb_is_never_inflated_past_the_expected_size(tmp_path, suite):
    folder, _, _ = suite
    expected = golden.load(CASE, folder).expected["output"]
    # The right header, then 64 MiB of zeros that deflate to a few KiB.
    bomb = _npy(expected, payload=expected.tobytes() + bytes(2**26))
    data = _zip({"output.npy": bomb}, compression=zipfile.ZIP_DEFLATED)
    assert len(data) < 2**20
    (_, problems), peak = _with_peak(_check, tmp_path, suite, data)
    assert "data bytes, its header says" in problems[0]
    assert peak < 2**24


def test_a_fifo_is_refused_without_being_opened(tmp_path, suite):
    folder = _results(tmp_path, suite[2], "other")
    os.mkfifo(folder / f"{CASE}.npz")
    _, problems = golden.check_directory(folder, suite[0])
    assert any("not a regular file" in p for p in problems)


def test_an_npy_renamed_to_npz_fails_alone(tmp_path, suite):
    folder = _results(tmp_path, _npy(), CASE)
    (folder / "f32_k3.npz").write_bytes(suite[2])  # another file, unknown to this suite
    _, problems = golden.check_directory(folder, suite[0])
    assert len(problems) == 2
    assert any("not a readable .npz archive" in p for p in problems)


def test_pickled_members_are_refused(tmp_path, suite):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"boom": 1}], dtype=object), allow_pickle=True)
    _, problems = _check(tmp_path, suite, _zip({"output.npy": buffer.getvalue()}))
    assert "holds Python objects (pickled data)" in problems[0]


def test_big_endian_results_are_accepted(tmp_path, suite):
    case = golden.load(CASE, suite[0])
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.astype(v.dtype.newbyteorder(">")) for k, v in case.expected.items()})
    reports, problems = _check(tmp_path, suite, buffer.getvalue())
    assert not problems and all(v.passed for v in reports)


def test_dev_zero_is_not_a_fixture():
    with pytest.raises(golden.GoldenFileError, match="not a regular file"):
        golden.read("/dev/zero")


# -- fixtures and manifests ----------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata", [[1, 2], "text", {"format_version": 1}, {"format_version": 1, "dtype": "int8"}]
)
def test_malformed_metadata_is_a_golden_file_error(tmp_path, metadata):
    text = json.dumps(metadata).encode()
    path = tmp_path / "bad.npz"
    path.write_bytes(_zip({"metadata.npy": _npy(np.frombuffer(text, np.uint8), dtype="|u1")}))
    with pytest.raises(golden.GoldenFileError):
        golden.read(path)


def test_a_plain_npy_is_not_a_fixture(tmp_path):
    path = tmp_path / "plain.npz"
    path.write_bytes(_npy())
    with pytest.raises(golden.GoldenFileError, match=r"not a readable \.npz archive"):
        golden.read(path)


BAD_ENTRIES = [
    "f32_g2_k3",
    {"id": CASE},
    {"id": CASE, "file": None, "sha256": "0" * 64},
    {"id": CASE, "file": ".", "sha256": "0" * 64},
    {"id": CASE, "file": "../f32_g2_k3.npz", "sha256": "0" * 64},
    {"id": CASE, "file": "/etc/passwd", "sha256": "0" * 64},
    {"id": CASE, "file": f"{CASE}.npz", "sha256": 5},
    {"id": None, "file": f"{CASE}.npz", "sha256": "0" * 64},
]


@pytest.mark.parametrize("entry", BAD_ENTRIES, ids=[str(e)[:40] for e in BAD_ENTRIES])
def test_malformed_manifest_entries(tmp_path, suite, entry):
    folder = tmp_path / "golden"
    folder.mkdir()
    (folder / f"{CASE}.npz").write_bytes(suite[1])
    (folder / "manifest.json").write_text(
        json.dumps({"format_version": 2, "suite": "standard", "cases": [entry]})
    )
    with pytest.raises(golden.GoldenFileError, match=r"manifest\.json"):
        golden.load(CASE, folder)
    assert golden.verify(folder)
    _, problems = golden.check_directory(_results(tmp_path, suite[2]), folder)
    assert problems and "manifest.json" in problems[0]


def test_a_listed_directory_is_called_a_directory(tmp_path, suite):
    folder = tmp_path / "golden"
    folder.mkdir()
    (folder / f"{CASE}.npz").mkdir()
    entry = {"id": CASE, "file": f"{CASE}.npz", "sha256": "0" * 64}
    (folder / "manifest.json").write_text(
        json.dumps({"format_version": 2, "suite": "standard", "cases": [entry]})
    )
    with pytest.raises(golden.GoldenFileError, match="is a directory"):
        golden.load(CASE, folder)
    assert any("is a directory" in p for p in golden.verify(folder))


def test_generate_with_a_filter_merges_into_an_existing_suite(tmp_path):
    folder = tmp_path / "golden"
    golden.generate(folder, dtypes=["float32"], pattern="f32_g2_*", progress=None)
    before = json.loads((folder / "manifest.json").read_text())["cases"]
    golden.generate(folder, dtypes=["float64"], pattern="f64_k3", progress=None)
    after = json.loads((folder / "manifest.json").read_text())["cases"]
    assert {e["id"] for e in after} == {e["id"] for e in before} | {"f64_k3"}
    assert golden.verify(folder) == []
    with pytest.raises(golden.GoldenFileError, match="holds suite 'standard', not 'large'"):
        golden.generate(folder, suite="large", progress=None)


def test_a_filter_matching_nothing_creates_nothing(tmp_path):
    with pytest.raises(ValueError, match="no case"):
        golden.generate(tmp_path / "new", pattern="nothing*", progress=None)
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match="out must name a folder"):
        golden.generate("", pattern="f32_k3", progress=None)


# -- mutated files, drawn by Hypothesis ----------------------------------------------------

MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
)


def _mutate(data, mutations):
    data = bytearray(data)
    for kind, position, value in mutations:
        if not data:
            break
        position %= len(data)
        if kind == "flip":
            data[position] ^= value
        elif kind == "truncate":
            del data[position:]
        else:
            data.insert(position, value)
    return bytes(data)


def _rebuilt(data, rename=None, drop=None, extra=None, shape_edit=None):
    """The archive's members re-zipped with one structural change."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if rename is not None:
        names = sorted(members)
        old = names[rename % len(names)]
        members["renamed_" + old] = members.pop(old)
    if drop is not None and members:
        names = sorted(members)
        members.pop(names[drop % len(names)])
    if extra is not None:
        members[f"extra{extra}.npy"] = _npy()
    if shape_edit is not None and members:
        names = sorted(members)
        name = names[shape_edit % len(names)]
        members[name] = members[name].replace(b"'shape': (", b"'shape': (7, ", 1)
    return _zip(members)


STRUCTURAL = st.fixed_dictionaries(
    {},
    optional={
        "rename": st.integers(0, 20),
        "drop": st.integers(0, 20),
        "extra": st.integers(0, 3),
        "shape_edit": st.integers(0, 20),
    },
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.sampled_from(["fixture", "results"]),
    structural=STRUCTURAL,
    mutations=st.lists(MUTATIONS, max_size=3),
)
def test_mutated_files_give_a_named_error_or_a_correct_pass(
    tmp_path_factory, suite, which, structural, mutations
):
    folder, fixture_bytes, results_bytes = suite
    data = fixture_bytes if which == "fixture" else results_bytes
    data = _mutate(_rebuilt(data, **structural) if structural else data, mutations)
    workdir = tmp_path_factory.mktemp("mutated")
    tracemalloc.start()
    try:
        if which == "fixture":
            path = workdir / f"{CASE}.npz"
            path.write_bytes(data)
            try:
                case = golden.read(path)
            except golden.GoldenFileError:
                pass
            else:  # whatever it read must be a consistent fixture
                assert set(case.expected) >= {"output", "grad_input", "grad_weight"}
        else:
            reports, problems = golden.check_directory(_results(workdir, data), folder)
            assert reports or problems
            if not problems and data == results_bytes:
                assert all(v.passed for v in reports)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**25, f"{peak} bytes for a file of {len(data)}"


# -- function arguments --------------------------------------------------------------------

X, W = np.ones((2, 4, 10)), np.ones((6, 2, 3))
G = np.ones((2, 6, 8))


@pytest.mark.parametrize("groups", [np.int64(2), (2,), [2]])
def test_primitives_take_the_argument_forms_conv1d_takes(groups):
    expected_x = uscale_ref.correlate_input_grad(G, W, input_length=10, groups=2)
    expected_w = uscale_ref.correlate_weight_grad(G, X, kernel_size=3, groups=2)
    np.testing.assert_array_equal(
        uscale_ref.correlate_input_grad(G, W, input_length=np.int64(10), groups=groups),
        expected_x,
    )
    np.testing.assert_array_equal(
        uscale_ref.correlate_weight_grad(G, X, kernel_size=np.int32(3), groups=groups), expected_w
    )


def test_primitives_refuse_one_dimensional_arrays():
    with pytest.raises(ValueError, match="grad_output must have 2 or 3 dimensions"):
        uscale_ref.correlate_input_grad(np.ones(8), W, input_length=10)
    with pytest.raises(ValueError, match="input must have 2 or 3 dimensions"):
        uscale_ref.correlate_weight_grad(G, np.ones(10), kernel_size=3)


@pytest.mark.parametrize(
    "scale_power", [(1000, 0.5, 0.5), (0.5, 400, 0.5), (0.5, 0.5, 1000), (1e-300, 0.5, 0.5)]
)
@pytest.mark.parametrize("constraint", [None, "gmean", "hmean", "amean"])
def test_extreme_scale_powers_give_a_result(scale_power, constraint):
    """Scales that underflow are 0 (a result); the output is then a correct 0 too."""
    scales = uscale_ref.conv1d_scales(
        X.shape, (6, 4, 3), scale_power=scale_power, constraint=constraint
    )
    assert all(np.isfinite(s) and s >= 0 for s in scales)
    y = uscale_ref.conv1d(X, np.ones((6, 4, 3)), scale_power=scale_power, constraint=constraint)
    np.testing.assert_allclose(y, scales.output * 12)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"scale_power": (-1000, 0.5, 0.5)},
            r"scale_power\[0\]=-1000.0 makes the output scale overflow",
        ),
        ({"scale_power": (0.5, -400, 0.5)}, r"scale_power\[1\]=-400.0"),
        ({"scale_power": (0.5, 0.5, -1000)}, r"scale_power\[2\]=-1000.0"),
        (
            {"stride": 2**1100, "scale_power": (0.5, 2.0, 0.5)},
            r"with stride=.* makes the grad_input",
        ),
    ],
)
def test_scales_past_float_range_are_named(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        uscale_ref.conv1d(X, np.ones((6, 4, 3)), **kwargs)


def test_a_huge_stride_has_its_correct_result():
    y = uscale_ref.conv1d(X, np.ones((6, 4, 3)), stride=2**1100, constraint=None)
    np.testing.assert_allclose(y, np.full((2, 6, 1), 12 / 12**0.5))


@pytest.mark.parametrize(
    ("shape", "error", "pattern"),
    [
        ((2.5, 4, 16), TypeError, "input shape must hold ints"),
        (5, TypeError, "input shape must be a sequence of ints"),
        (("2", 4, 16), TypeError, "input shape must hold ints"),
        ((True, 4, 16), TypeError, "input shape must hold ints"),
    ],
)
def test_scales_check_their_shape_arguments(shape, error, pattern):
    with pytest.raises(error, match=pattern):
        uscale_ref.conv1d_scales(shape, (2, 4, 3))


def test_masked_arrays_are_refused():
    with pytest.raises(TypeError, match="input is a NumPy masked array"):
        uscale_ref.conv1d(np.ma.masked_array(X, mask=False), np.ones((6, 4, 3)))


def test_sparse_tensors_are_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"layout torch\.sparse_coo"):
        uscale_ref.conv1d(torch.ones(2, 4, 10).to_sparse(), torch.ones(6, 4, 3))


def test_the_cli_check_reports_a_corrupt_file_cleanly(tmp_path, suite, capsys):
    folder = _results(tmp_path, suite[2][:50])
    assert main(["golden", "check", str(folder), "--golden", str(suite[0])]) == 1
    err = capsys.readouterr().err
    assert "not a readable .npz archive" in err and "Traceback" not in err


def test_jax_grad_and_vmap():
    """What the docs promise for JAX: grad differentiates the forward, vmap maps over items."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((2, 4, 12)), dtype=jnp.float32)
    w = jnp.asarray(rng.standard_normal((6, 4, 3)), dtype=jnp.float32)
    g = jnp.asarray(rng.standard_normal((2, 6, 6)), dtype=jnp.float32)
    kwargs = {"stride": 2, "padding": 1, "constraint": None}
    scales = uscale_ref.conv1d_scales(x.shape, w.shape, **kwargs)
    explicit = uscale_ref.conv1d_backward(g, x, w, **kwargs)

    def loss(x, w):
        return jnp.sum(uscale_ref.conv1d(x, w, **kwargs) * g)

    grad_x, grad_w = jax.grad(loss, argnums=(0, 1))(x, w)
    # autograd sees the forward scale; the explicit backward applies its own.
    np.testing.assert_allclose(
        grad_x / scales.output * scales.grad_input, explicit.grad_input, atol=1e-5
    )
    np.testing.assert_allclose(
        grad_w / scales.output * scales.grad_weight, explicit.grad_weight, atol=1e-5
    )
    mapped = jax.vmap(lambda xi: uscale_ref.conv1d(xi, w, **kwargs))(x)
    np.testing.assert_allclose(mapped, uscale_ref.conv1d(x, w, **kwargs), atol=1e-5)
    mapped = jax.vmap(lambda gi, xi: uscale_ref.conv1d_backward(gi, xi, w, **kwargs).grad_input)
    np.testing.assert_allclose(mapped(g, x), explicit.grad_input, atol=1e-5)
