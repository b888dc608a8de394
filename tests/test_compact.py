"""Compact fixtures: inputs from seeds, exact values at chosen positions, judged like any case."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import uscale_ref
from uscale_ref import golden
from uscale_ref.cli import main
from uscale_ref.exact import bounds, ozaki, points
from uscale_ref.golden import CaseSpec, Fixture, GoldenFileError
from uscale_ref.golden.fixture import build, read, to_bytes
from uscale_ref.golden.inputs import draw, draw_at
from uscale_ref.golden.positions import edge_values, grid_for, positions_for
from uscale_ref.scales import scales_for_geometry
from uscale_ref.testing import assert_conv1d

ROOT = Path(__file__).resolve().parents[1]

SPECS = [
    CaseSpec("float32", kernel_size=9, batch_size=2, in_channels=48, out_channels=80,
             length=300, padding="same"),
    CaseSpec("complex64", kernel_size=4, batch_size=3, in_channels=8, out_channels=12,
             length=90, stride=2, dilation=2, padding=2, groups=4),
    CaseSpec("bfloat16", kernel_size=5, batch_size=2, in_channels=32, out_channels=24,
             length=200, padding=2),
    CaseSpec("float64", kernel_size=3, batch_size=None, in_channels=6, out_channels=10,
             length=150, stride=3),
    CaseSpec("float16", kernel_size=7, in_channels=16, out_channels=16, length=120,
             groups=16, padding="same", bias=False),
]  # fmt: skip


def _full(spec):
    from dataclasses import replace

    arrays, metadata = build(replace(spec, compact=None))
    return Fixture(spec.id, metadata, arrays)


def _compact(spec, count):
    from dataclasses import replace

    compact = replace(spec, compact=count)
    arrays, metadata = build(compact)
    return Fixture(compact.id, metadata, arrays)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16", "complex64",
                                   "complex128", "complex32"])  # fmt: skip
@pytest.mark.parametrize("fp8", [None, "float8_e4m3fn"])
def test_any_input_element_is_drawn_on_its_own(dtype, fp8):
    if fp8 and dtype != "float32":
        pytest.skip("FP8 inputs are float32 cases")
    whole = draw("case", "input", (3, 5, 41), dtype, fp8)
    flat = np.random.default_rng(0).integers(0, whole.size, 50)
    assert np.array_equal(draw_at("case", "input", (3, 5, 41), dtype, fp8, flat),
                          whole.reshape(-1)[flat])  # fmt: skip


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_compact_values_are_the_full_fixtures_at_the_positions(spec):
    full, compact = _full(spec), _compact(spec, 600)
    assert compact.compact and not full.compact
    assert compact.metadata["seeds"] == full.metadata["seeds"]  # the same inputs
    for name in full.expected:
        at = compact.positions(name)
        assert at.size and np.all(np.diff(at) > 0) and at[-1] < full.expected[name].size
        assert np.array_equal(compact.expected[name], full.expected[name].reshape(-1)[at]), name
        assert np.array_equal(compact.error_scale(name), full.error_scale(name).reshape(-1)[at])
        assert (
            compact.metadata["tolerance"]["terms"][name]
            == full.metadata["tolerance"]["terms"][name]
        )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_inputs_cut_whole_or_where_gathered_give_the_same_bytes(spec, monkeypatch):
    """Small inputs are cut into slices whole, large ones element by element where a block
    gathers them: the same numbers either way."""
    from dataclasses import replace

    compact = replace(spec, compact=400)
    whole = to_bytes(*build(compact))
    monkeypatch.setattr(points, "WHOLE_ELEMENTS", 0)
    assert to_bytes(*build(compact)) == whole


@pytest.mark.parametrize("spec", SPECS[:3], ids=lambda s: s.id)
def test_any_positions_by_rows_or_by_tiles(spec):
    """The row-by-row route (arbitrary positions) and the tile route agree with the full arrays."""
    full = _full(spec)
    g = spec.geometry
    scales = scales_for_geometry(g, spec.constraint, spec.scale_power)
    source = points.ArraySource({k: full.inputs[k] for k in ("input", "weight", "bias",
                                                            "grad_output")})  # fmt: skip
    if not g.batched:
        pytest.skip("batched cases only here")
    target = {"bfloat16": "bfloat16", "complex64": "float32"}.get(spec.dtype, spec.dtype)
    rng = np.random.default_rng(1)
    for name, function, factor in [
        ("output", points.output_at, scales.output),
        ("grad_input", points.input_grad_at, scales.grad_input),
    ]:
        expected = full.expected[name].reshape(-1)
        flat = np.unique(rng.integers(0, expected.size, 300))
        sums = function(source, g, flat, factor, target)
        values = sums.values[0] if len(sums.values) == 1 else sums.values[0] + 1j * sums.values[1]
        assert np.array_equal(values.astype(expected.dtype), expected[flat]), name
        assert np.array_equal(sums.error_scale, full.error_scale(name).reshape(-1)[flat]), name


def test_positions_keep_the_tile_edges_borders_and_corners():
    spec = CaseSpec("float32", kernel_size=9, batch_size=8, in_channels=256, out_channels=256,
                    length=4096, padding="same")  # fmt: skip
    flat = positions_for(spec, "output", 20000)
    assert flat.size == 20000 and np.all(np.diff(flat) > 0)
    assert np.array_equal(flat, positions_for(spec, "output", 20000))  # deterministic
    n, o, length = np.unravel_index(flat, (8, 256, 4096))
    for tile in (64, 128):
        assert {tile - 1, tile, tile + 1} <= set(o.tolist())
    for tile in (64, 256, 1024):
        assert {tile - 1, tile, tile + 1} <= set(length.tolist())
    assert 255 in set(o.tolist())
    assert {0, 7} <= set(n.tolist()) and {0, 1, 2, 4093, 4094, 4095} <= set(length.tolist())
    assert 0 in flat and flat[-1] == 8 * 256 * 4096 - 1  # the corners
    rows, columns = grid_for(spec, 20000)
    assert {63, 64, 65, 255} <= set(rows.tolist()) and rows.size * columns.size <= 20000
    assert edge_values(20)[:3] == [0, 1, 2]


def test_a_small_array_is_kept_whole():
    spec = CaseSpec("float32", kernel_size=3)
    assert np.array_equal(positions_for(spec, "output", 10**6), np.arange(2 * 6 * 14))


def test_round_up_is_exact_on_the_grid_and_above_it():
    values = np.array([0.0, 1.0, 1.0 + 2.0**-40, 255.0, 2.0**-1074, 3.7e300])
    up = bounds.round_up(values)
    assert up[0] == 0 and up[1] == 1.0 and up[2] == 1.0 + 2.0**-7 and up[3] == 255.0
    assert up[4] == 2.0**-1074 and up[5] >= 3.7e300
    for value, rounded in zip(values, up, strict=True):
        fraction, _ = np.frexp(rounded)
        assert rounded >= value and (fraction * 256).is_integer()


def test_exact_round_up_decides_values_a_hair_above_a_grid_point():
    limbs = ozaki.Limbs((3,), 20)
    # 1, 1 + 2^-60 (rounds to 1.0 in float64, but lies above the grid point) and 3 - 2^-60.
    exact = [Fraction(1), Fraction(1) + Fraction(1, 2**60), Fraction(3) - Fraction(1, 2**60)]
    scale = 2**60
    limbs.add(2, np.array([float(e * scale) if e.denominator == 1 else 0.0 for e in exact]))
    limbs.limb(2)[1] = 2**60 + 1
    limbs.limb(2)[2] = 3 * 2**60 - 1
    frame = np.full(3, -60 + 2 * 20, dtype=np.int64)
    up = bounds.exact_round_up(limbs, frame, 1.0)
    assert up.tolist() == [1.0, 1.0 + 2.0**-7, 3.0]


def test_a_tampered_compact_file_is_refused(tmp_path):
    case = _compact(SPECS[0], 300)
    metadata = dict(case.metadata)
    for change in ("unsorted", "outside", "dtype"):
        arrays = {k: v.copy() for k, v in case.arrays.items()}
        if change == "unsorted":
            arrays["positions_output"] = arrays["positions_output"][::-1].copy()
        elif change == "outside":
            arrays["positions_output"][-1] = 10**12
        else:
            arrays["positions_output"] = arrays["positions_output"].astype(np.int32)
        path = tmp_path / f"{change}.npz"
        path.write_bytes(to_bytes(arrays, metadata))
        with pytest.raises(GoldenFileError, match="positions_output"):
            read(path)


def test_compact_suite_from_the_command_line_catches_the_tile_bug(tmp_path, capsys):
    case = "dtype=float32,N=2,C=16,L=300,O=192,K=5,padding=same"
    assert main(["golden", "generate", "--out", str(tmp_path), "--case", case,
                 "--compact", "3000"]) == 0  # fmt: skip
    assert main(["golden", "verify", str(tmp_path)]) == 0
    (case_id,) = [p.stem for p in tmp_path.glob("*.npz")]
    assert case_id == "f32_c16o192l300_same_k5_compact3000"
    loaded = golden.load(case_id, tmp_path)
    assert (
        loaded.compact
        and "input" not in loaded.arrays
        and loaded.input("input").shape == (2, 16, 300)
    )
    report = assert_conv1d(uscale_ref.conv1d, uscale_ref.conv1d_backward, golden_dir=tmp_path,
                           drawn=0)  # fmt: skip
    assert report.cases == 1
    sys.path.insert(0, str(ROOT / "examples" / "user_project"))
    os.environ["MY_KERNEL_TILE_BUG"] = "1"
    try:
        import importlib

        import my_kernel

        importlib.reload(my_kernel)
        with pytest.raises(AssertionError) as failure:
            assert_conv1d(my_kernel.my_conv1d, my_kernel.my_conv1d_backward,
                          golden_dir=tmp_path, drawn=0)  # fmt: skip
    finally:
        os.environ.pop("MY_KERNEL_TILE_BUG")
        sys.path.remove(str(ROOT / "examples" / "user_project"))
    text = str(failure.value)
    assert "judged elements fail, at o in 64..127" in text
    assert "likely cause: output at o in 64..127" in text
    # golden check judges whole results at the kept positions.
    results = tmp_path / "results"
    results.mkdir()
    x, w, b, _ = loaded.inputs.values()
    np.savez(results / f"{case_id}.npz", output=uscale_ref.conv1d(x, w, b, **loaded.kwargs))
    capsys.readouterr()
    assert main(["golden", "check", str(results), "--golden", str(tmp_path)]) == 0
    assert "check: 1 passed, 0 failed" in capsys.readouterr().out


def test_compact_spec_is_checked():
    with pytest.raises(ValueError, match="compact must be a number of positions"):
        CaseSpec("float32", compact=0)
    with pytest.raises(ValueError, match="compact must be a number of positions"):
        CaseSpec("float32", compact=True)
    spec = CaseSpec("float32", compact=500)
    assert spec.id == "f32_k3_compact500" and spec.input_id == "f32_k3"
