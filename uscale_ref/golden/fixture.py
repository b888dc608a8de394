"""The fixture file format: build, write (byte for byte reproducibly) and read one case.

A fixture is a plain, uncompressed ``.npz`` (a ZIP archive of ``.npy``
files) with no pickled objects. Arrays:

``input``, ``weight``, ``bias`` (when present), ``grad_output``
    the inputs, in the case's dtype; an operand in a narrower format of its
    own (metadata ``formats``) as that format's bytes (uint8) for the 8-bit
    formats, as float16 for float16 and as float32 for bfloat16;
``output``, ``grad_input``, ``grad_weight``, ``grad_bias`` (when present)
    the expected results, in the case's dtype, correctly rounded from
    double-double sums;
``error_scale_<name>`` for each expected array
    float64, the element-wise magnitude ``|scale| * (|w| * |x| + |b|)`` of
    the terms that make up the result (``|re| + |im|`` for complex);
``metadata``
    uint8, UTF-8 JSON text (see :func:`build`).

The ZIP members carry a fixed timestamp and are stored uncompressed, so the
same case gives the same bytes on every machine.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import __version__
from ..exact import filtered, sliced
from ..formats import EIGHT_BIT, FORMATS, STORAGE, from_bits, to_bits
from ..scales import scales_for_geometry
from ..tolerance.conventions import convention_centres, narrow
from ..tolerance.layout import groups_of, layout_of
from .errors import GoldenFileError
from .inputs import draw, seed_for
from .npz import read_npz
from .suite import DTYPES, CaseSpec

FORMAT_VERSION = 3
# Version 1 files (the same arrays, an older rule in the metadata) and version 2 files
# (FP8 operands as float32 values) are still read.
READABLE_VERSIONS = (1, 2, 3)
INPUT_NAMES = ("input", "weight", "bias", "grad_output")
RESULT_NAMES = ("output", "grad_input", "grad_weight", "grad_bias")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Dtypes without a NumPy dtype of their own: the format their values lie in.
_FORMAT_OF = {"bfloat16": "bfloat16", "complex32": "float16"}
# The most a fixture's arrays may take when read; the large suite's biggest
# case holds a few MiB.
MAX_FIXTURE_BYTES = 2**30
MAX_METADATA_BYTES = 2**20


def unit_roundoff(dtype: str) -> float:
    """Half the machine epsilon of the dtype (of its real part for complex)."""
    if dtype in _FORMAT_OF:
        return FORMATS[_FORMAT_OF[dtype]].unit_roundoff
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def _terms(spec: CaseSpec, out_length: int) -> dict[str, int]:
    """How many products each result element sums (at most)."""
    batch = spec.batch_size or 1
    return {
        "output": (spec.in_channels // spec.groups) * spec.kernel_size + int(spec.bias),
        "grad_input": (spec.out_channels // spec.groups) * spec.kernel_size,
        "grad_weight": batch * out_length,
        "grad_bias": batch * out_length,
    }


def tolerance_metadata(
    dtype: str,
    terms: dict[str, int],
    scales: dict[str, float],
    centres: dict[str, list[float]],
) -> dict[str, Any]:
    """The verdict's rule with the case's numbers, for readers in any language.

    The accumulation format is the default one (float32 for float16, bfloat16
    and complex32 cases, else the dtype); docs/golden-format.md derives each
    number.
    """
    from ..tolerance import rule as verdict_rule

    rule = verdict_rule.rule_for(dtype)
    return {
        "rule": (
            "abs(actual - expected) <= accumulation_units * accumulation_unit_roundoff "
            "* error_scale + output_units * unit_roundoff * rounded, element-wise; "
            "rounded = abs(expected), plus abs(scales.output * bias[o]) for the output"
        ),
        "output_format": rule.output_format,
        "unit_roundoff": rule.u_out,
        "accumulation": rule.accumulate,
        "accumulation_unit_roundoff": rule.u_acc,
        "terms": terms,
        # null: no finite bound (a sum of that many terms in that format can lose every bit).
        "accumulation_units": {
            name: _finite_or_none(rule.accumulation_units(n)) for name, n in terms.items()
        },
        "output_units": rule.output_units,
        "precision": {
            "yardstick": "sqrt((accumulation_unit_roundoff * error_scale)**2 "
            "+ (unit_roundoff * rounded)**2)",
            "format_bits": rule.bits,
            "margin_bits": verdict_rule.MARGIN_BITS,
            "block": verdict_rule.BLOCK,
        },
        "bias": {
            "z_limit": verdict_rule.Z_LIMIT,
            "centres": centres,
            "allowed": {
                name: [list(pair) for pair in rule.allowed_scale_errors(scales[name], c)]
                for name, c in centres.items()
            },
            "row_allowed": {
                name: [list(pair) for pair in rule.allowed_row_scale_errors(scales[name], c)]
                for name, c in centres.items()
            },
        },
    }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


#: How many progress steps :func:`build` reports per case.
BUILD_STEPS = 6


def build(
    spec: CaseSpec, step: Callable[[], None] | None = None
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """The arrays and metadata of one case (nothing is written).

    ``step()``, when given, is called :data:`BUILD_STEPS` times as the
    exact sums progress. A caller's ``np.seterr`` does not reach it: the
    exact arithmetic underflows and overflows on purpose.
    """
    with np.errstate(all="ignore"):
        return _build(spec, step)


def _build(
    spec: CaseSpec, step: Callable[[], None] | None
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    if spec.compact is not None:
        return _build_compact(spec, step)
    geometry = spec.geometry
    scales = scales_for_geometry(geometry, spec.constraint, spec.scale_power)
    formats = spec.formats

    def drawn(name: str, shape: tuple[int, ...]) -> npt.NDArray[Any]:
        return draw(spec.input_id, name, shape, spec.dtype, formats.get(name))

    arrays: dict[str, npt.NDArray[Any]] = {
        "input": drawn("input", spec.input_shape),
        "weight": drawn("weight", spec.weight_shape),
    }
    if spec.bias:
        arrays["bias"] = drawn("bias", (spec.out_channels,))
    arrays["grad_output"] = drawn("grad_output", geometry.output_shape)

    batched = spec.batch_size is not None

    def as_batch(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return a if batched else a[None]

    unscaled: dict[str, npt.NDArray[Any]] | None = {} if narrow(spec.dtype) else None
    results = filtered.expected_results(
        as_batch(arrays["input"]),
        arrays["weight"],
        arrays.get("bias"),
        as_batch(arrays["grad_output"]),
        geometry,
        scales,
        spec.dtype,
        step=step,
        unscaled_out=unscaled,
    )
    centres: dict[str, list[float]] = {}
    for name, (value, error_scale) in results.items():
        if not batched and name in ("output", "grad_input"):
            value, error_scale = value[0], error_scale[0]
        arrays[name] = value
        arrays[f"error_scale_{name}"] = error_scale
        held = None if unscaled is None else unscaled[name].reshape(value.shape)
        centres[name] = _centres(spec, name, value, held, getattr(scales, name), None)
    shapes = {name: list(arrays[name].shape) for name in INPUT_NAMES + RESULT_NAMES
              if name in arrays}  # fmt: skip
    for name, format in formats.items():  # stored in their own format, as readers take them
        arrays[name] = stored_operand(arrays[name], format)
    return arrays, _metadata(spec, list(results), shapes, centres)


def operand_file_dtype(format: str) -> np.dtype[Any]:
    """The dtype a fixture stores an operand of ``format`` in: its bytes for the 8-bit
    formats, float16 for float16, float32 for bfloat16."""
    if format in EIGHT_BIT:
        return np.dtype(np.uint8)
    return np.dtype(np.float16 if format == "float16" else np.float32)


def stored_operand(values: npt.NDArray[Any], format: str) -> npt.NDArray[Any]:
    """An operand's values (float32, each in ``format``) as a fixture stores them."""
    if format in EIGHT_BIT:
        return to_bits(values, format)
    return values.astype(operand_file_dtype(format))


def operand_values(stored: npt.NDArray[Any], format: str) -> npt.NDArray[np.float32]:
    """The float32 values of an operand stored in ``format`` (:func:`stored_operand`)."""
    if stored.dtype == np.uint8:
        return from_bits(stored, format)
    values: npt.NDArray[np.float32] = stored.astype(np.float32)
    return values


def _centres(
    spec: CaseSpec,
    name: str,
    value: npt.NDArray[Any],
    held: npt.NDArray[Any] | None,
    scale: float,
    positions: npt.NDArray[np.int64] | None,
) -> list[float]:
    """The bias check's centres for one result (0 alone unless the dtype is narrow)."""
    if held is None:
        return [0.0]
    shape = tuple(_result_shape(spec, name))
    groups = groups_of(layout_of(name, shape), positions)
    return convention_centres(value.reshape(-1), held.reshape(-1), scale, spec.dtype, groups)


def _result_shape(spec: CaseSpec, name: str) -> list[int]:
    geometry = spec.geometry
    return list(
        {
            "output": geometry.output_shape,
            "grad_input": spec.input_shape,
            "grad_weight": spec.weight_shape,
            "grad_bias": (spec.out_channels,),
        }[name]
    )


def _build_compact(
    spec: CaseSpec, step: Callable[[], None] | None
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
    """A compact case: positions, expected values and error scales there; no inputs."""
    from ..exact import points
    from .inputs import SeededSource
    from .positions import grid_for, positions_for

    assert spec.compact is not None
    geometry = spec.geometry
    scales = scales_for_geometry(geometry, spec.constraint, spec.scale_power)
    source = SeededSource(spec)
    target = sliced._PART_TARGET[spec.dtype]
    held = narrow(spec.dtype)
    done = step or (lambda: None)
    computed: dict[str, tuple[npt.NDArray[np.int64], points.Sums]] = {}
    flat = positions_for(spec, "output", spec.compact)
    sums = points.output_at(source, geometry, flat, scales.output, target, held)
    computed["output"] = (flat, sums)
    done()
    done()
    flat = positions_for(spec, "grad_input", spec.compact)
    sums = points.input_grad_at(source, geometry, flat, scales.grad_input, target, held)
    computed["grad_input"] = (flat, sums)
    done()
    done()
    rows, columns = grid_for(spec, spec.compact)
    grid = points.weight_grad_grid(
        source, geometry, rows, columns, scales.grad_weight,
        scales.grad_bias if spec.bias else None, target, held,
    )  # fmt: skip
    computed["grad_weight"] = (positions_for(spec, "grad_weight", spec.compact), grid.weight)
    if grid.bias is not None:
        computed["grad_bias"] = (rows, grid.bias)
    done()
    done()
    arrays: dict[str, npt.NDArray[Any]] = {}
    centres: dict[str, list[float]] = {}
    for name, (positions, sums) in computed.items():
        value = sliced._combine(sums.values, spec.dtype)
        arrays[f"positions_{name}"] = positions.astype(np.int64)
        arrays[name] = value
        arrays[f"error_scale_{name}"] = sums.error_scale
        unscaled = None if sums.unscaled is None else sliced._combine(sums.unscaled, spec.dtype)
        centres[name] = _centres(spec, name, value, unscaled, getattr(scales, name), positions)
    metadata = _metadata(spec, list(computed), _whole_shapes(spec), centres)
    metadata["compact"] = {
        "positions": spec.compact,
        "counts": {name: int(positions.size) for name, (positions, _) in computed.items()},
        "inputs": "not stored: drawn from their seeds (see the format's Inputs section)",
    }
    return arrays, metadata


def _metadata(
    spec: CaseSpec,
    results: list[str],
    shapes: dict[str, list[int]],
    centres: dict[str, list[float]],
) -> dict[str, Any]:
    geometry = spec.geometry
    scales = scales_for_geometry(geometry, spec.constraint, spec.scale_power)
    terms = {k: v for k, v in _terms(spec, geometry.out_length).items() if k in results}
    formats = spec.formats
    return {
        "format_version": FORMAT_VERSION,
        "id": spec.id,
        "suite": spec.suite,
        "dtype": spec.dtype,
        **({"storage_dtype": spec.storage_dtype} if spec.dtype in STORAGE else {}),
        **({"formats": formats} if formats else {}),
        "function": "unit_scaling.functional.conv1d (forward) and its autograd backward",
        "arguments": {
            "stride": _json_argument(spec.stride),
            "padding": _json_argument(spec.padding),
            "dilation": _json_argument(spec.dilation),
            "groups": spec.groups,
            "constraint": spec.constraint,
            "scale_power": list(spec.scale_power),
        },
        "resolved": _resolved(spec),
        "shapes": shapes,
        "scales": scales._asdict(),
        "seeds": _seeds(spec),
        "generator": f"uscale_ref {__version__}: SplitMix64 + 4-term Irwin-Hall inputs; "
        "exact sliced products (Ozaki) rounded once",
        "tolerance": tolerance_metadata(spec.dtype, terms, scales._asdict(), centres),
    }


def _resolved(spec: CaseSpec) -> dict[str, Any]:
    """What the arguments resolve to: padding each side, the output's length, and flags."""
    geometry = spec.geometry
    return {
        "pad_left": geometry.pad_left,
        "pad_right": geometry.pad_right,
        "out_length": geometry.out_length,
        "batched": spec.batch_size is not None,
        "has_bias": spec.bias,
    }


def _whole_shapes(spec: CaseSpec) -> dict[str, list[int]]:
    """The whole shape of every input and result of the case (the bias's when it has one)."""
    names = [name for name in (*INPUT_NAMES, *RESULT_NAMES)
             if spec.bias or name not in ("bias", "grad_bias")]  # fmt: skip
    inputs = {"input": spec.input_shape, "weight": spec.weight_shape,
              "bias": (spec.out_channels,), "grad_output": spec.geometry.output_shape}  # fmt: skip
    return {name: list(inputs[name]) if name in inputs else _result_shape(spec, name)
            for name in names}  # fmt: skip


def _seeds(spec: CaseSpec) -> dict[str, int]:
    """The seed each input of the case is drawn from (:func:`~.inputs.seed_for`)."""
    return {name: seed_for(spec.input_id, name) for name in INPUT_NAMES
            if name != "bias" or spec.bias}  # fmt: skip


def _json_argument(value: object) -> object:
    """Tuples become one-element JSON lists, so a reader can tell ``(1,)`` from ``1``."""
    return list(value) if isinstance(value, tuple) else value


def python_argument(value: object) -> object:
    """Inverse of the JSON form: a list becomes a tuple."""
    return tuple(value) if isinstance(value, list) else value


def to_bytes(arrays: dict[str, npt.NDArray[Any]], metadata: dict[str, Any]) -> bytes:
    """The fixture file's bytes: a reproducible, uncompressed npz."""
    text = json.dumps(metadata, sort_keys=True, indent=1).encode()
    members = {**arrays, "metadata": np.frombuffer(text, dtype=np.uint8)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in members.items():
            payload = io.BytesIO()
            np.lib.format.write_array(
                payload, np.ascontiguousarray(array), version=(1, 0), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            archive.writestr(info, payload.getvalue())
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Fixture:
    """One loaded golden case."""

    id: str
    metadata: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]

    @property
    def dtype(self) -> str:
        """The case's dtype: a NumPy name, or ``"bfloat16"`` / ``"complex32"``."""
        return str(self.metadata["dtype"])

    @property
    def storage_dtype(self) -> str:
        """The dtype of the stored arrays: float32 for bfloat16, complex64 for complex32."""
        return STORAGE.get(self.dtype, self.dtype)

    @property
    def formats(self) -> dict[str, str]:
        """The format each input's values lie in, for FP8 cases (else empty)."""
        return dict(self.metadata.get("formats", {}))

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`uscale_ref.conv1d` / ``conv1d_backward``."""
        arguments = dict(self.metadata["arguments"])
        for name in ("stride", "padding", "dilation"):
            arguments[name] = python_argument(arguments[name])
        arguments["scale_power"] = tuple(arguments["scale_power"])
        return arguments

    @property
    def compact(self) -> bool:
        """Whether the fixture keeps expected values at some positions only, its inputs
        drawn from their seeds when asked for."""
        return "compact" in self.metadata

    def input(self, name: str) -> npt.NDArray[Any] | None:
        """One input array (None for an absent bias); a compact fixture draws it from its
        seed the first time (:class:`~uscale_ref.golden.inputs.SeededSource`)."""
        if not self.compact:
            stored = self.arrays.get(name)
            format = self.formats.get(name)
            if stored is None or format is None:
                return stored
            return operand_values(stored, format)
        if name == "bias" and not self.metadata["resolved"]["has_bias"]:
            return None
        drawn: dict[str, npt.NDArray[Any]] = self.__dict__.setdefault("_drawn", {})
        if name not in drawn:
            from .inputs import SeededSource
            from .resources import check_memory

            source = SeededSource(self.spec)
            size = math.prod(source.shape(name)) * np.dtype(self.spec.operand_dtype(name)).itemsize
            check_memory(self.spec, f"drawing its whole {name}", 2 * size)
            drawn[name] = source.whole(name)
        return drawn[name]

    @property
    def inputs(self) -> dict[str, npt.NDArray[Any] | None]:
        """``input``, ``weight``, ``bias`` (None when absent), ``grad_output``; drawn from
        their seeds for a compact fixture."""
        return {name: self.input(name) for name in INPUT_NAMES}

    @property
    def expected(self) -> dict[str, npt.NDArray[Any]]:
        """The expected results: ``output``, ``grad_input``, ``grad_weight`` and,
        with a bias, ``grad_bias``; exact values rounded once to the case's dtype."""
        return {name: self.arrays[name] for name in RESULT_NAMES if name in self.arrays}

    def error_scale(self, name: str) -> npt.NDArray[np.float64]:
        """The magnitude of the terms summed into each element of result ``name``:
        the same scaled sum over absolute values (``|re| + |im|`` for complex)."""
        return self.arrays[f"error_scale_{name}"]

    def result_shape(self, name: str) -> tuple[int, ...]:
        """The whole shape of array ``name`` (an input or a result; a compact fixture stores
        only some elements of its results and none of its inputs)."""
        return tuple(int(n) for n in self.metadata["shapes"][name])

    def positions(self, name: str) -> npt.NDArray[np.int64] | None:
        """A compact fixture's flat positions (C order) of result ``name``, where its
        expected values are kept; None for a fixture that keeps whole arrays."""
        return self.arrays.get(f"positions_{name}")

    def terms(self, name: str) -> int:
        """How many products an element of result ``name`` sums, at most."""
        return int(self.metadata["tolerance"]["terms"][name])

    def scale_centres(self, name: str) -> list[float] | None:
        """The relative scale errors of the rounding conventions correct kernels use on result
        ``name`` (:mod:`uscale_ref.tolerance.conventions`); None in a version 1 file."""
        centres = self.metadata["tolerance"].get("bias", {}).get("centres", {}).get(name)
        return None if centres is None else [float(c) for c in centres]

    @property
    def spec(self) -> CaseSpec:
        """The :class:`CaseSpec` this fixture was built from, read back from its metadata.

        Raises
        ------
        GoldenFileError
            Metadata that describes no valid case.
        """
        return spec_from_metadata(self.metadata, self.id)

    def __str__(self) -> str:
        return self.id


def spec_from_metadata(metadata: dict[str, Any], where: str = "fixture") -> CaseSpec:
    """The case a fixture's metadata describes (its shapes, arguments and flags)."""
    try:
        shapes, arguments = metadata["shapes"], metadata["arguments"]
        resolved = metadata["resolved"]
        input_shape, weight_shape = list(shapes["input"]), list(shapes["weight"])
        batched = resolved["batched"]
        formats = metadata.get("formats", {})
        if not isinstance(formats, dict) or set(formats) - {"input", "weight", "grad_output"}:
            raise ValueError("'formats' must map input, weight or grad_output to a format")
        if batched is not (len(input_shape) == 3) or len(weight_shape) != 3:
            raise ValueError("shapes do not match 'batched'")
        return CaseSpec(
            dtype=metadata["dtype"],
            kernel_size=weight_shape[2],
            batch_size=input_shape[0] if batched else None,
            in_channels=input_shape[-2],
            out_channels=weight_shape[0],
            length=input_shape[-1],
            stride=python_argument(arguments["stride"]),  # type: ignore[arg-type]
            padding=python_argument(arguments["padding"]),  # type: ignore[arg-type]
            dilation=python_argument(arguments["dilation"]),  # type: ignore[arg-type]
            groups=arguments["groups"],
            bias=resolved["has_bias"],
            constraint=arguments["constraint"],
            scale_power=tuple(arguments["scale_power"]),
            input_format=formats.get("input"),
            weight_format=formats.get("weight"),
            grad_output_format=formats.get("grad_output"),
            compact=metadata["compact"]["positions"] if "compact" in metadata else None,
            suite=metadata["suite"],
        )
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise GoldenFileError(f"{where}: metadata describes no valid case ({error})") from None


def read_metadata(path: Path) -> dict[str, Any]:
    """The fixture's metadata, checked to have every field a reader uses."""

    def judge(name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        if dtype != np.uint8 or len(shape) != 1:
            raise GoldenFileError(f"{path}: 'metadata' must be a 1-D uint8 array")

    arrays = read_npz(path, judge, MAX_METADATA_BYTES, only=frozenset({"metadata"}))
    if "metadata" not in arrays:
        raise GoldenFileError(f"{path}: has no 'metadata' array")
    try:
        metadata = json.loads(arrays["metadata"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GoldenFileError(f"{path}: metadata is not UTF-8 JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise GoldenFileError(f"{path}: metadata must be a JSON object")
    version = metadata.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise GoldenFileError(
            f"{path}: format_version {metadata.get('format_version')!r}, "
            f"this reader knows {', '.join(map(str, READABLE_VERSIONS))}"
        )
    if metadata.get("dtype") not in DTYPES:
        raise GoldenFileError(f"{path}: metadata dtype must be one of {DTYPES}")
    arguments = metadata.get("arguments")
    keys = ("stride", "padding", "dilation", "groups", "constraint", "scale_power")
    if not isinstance(arguments, dict) or any(key not in arguments for key in keys):
        raise GoldenFileError(f"{path}: metadata 'arguments' must hold {', '.join(keys)}")
    for field in ("resolved", "shapes", "tolerance"):
        if not isinstance(metadata.get(field), dict):
            raise GoldenFileError(f"{path}: metadata {field!r} must be a JSON object")
    terms = metadata["tolerance"].get("terms")
    if not isinstance(terms, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in terms.values()
    ):
        raise GoldenFileError(
            f"{path}: metadata tolerance 'terms' must map names to non-negative integers"
        )
    scales = metadata.get("scales")
    if not isinstance(scales, dict) or not all(
        isinstance(scales.get(name), (int, float)) and not isinstance(scales.get(name), bool)
        for name in RESULT_NAMES
    ):
        raise GoldenFileError(f"{path}: metadata 'scales' must give a number for each result")
    _check_case(metadata, path)
    return metadata


def _check_case(metadata: dict[str, Any], path: Path) -> CaseSpec:
    """The case the metadata describes, every derived field checked against it.

    A reader in another language takes the seeds, shapes, scales and term
    counts from the metadata as written; so each must be what the case's
    arguments and id give, or the file describes no case.
    """
    spec = spec_from_metadata(metadata, str(path))
    if metadata.get("id") != spec.id:
        raise GoldenFileError(
            f"{path}: metadata id {metadata.get('id')!r} is not the one its shapes and "
            f"arguments give, {spec.id!r}"
        )
    geometry = spec.geometry
    scales = scales_for_geometry(geometry, spec.constraint, spec.scale_power)._asdict()
    results = [name for name in RESULT_NAMES if name != "grad_bias" or spec.bias]
    terms = _terms(spec, geometry.out_length)
    expected: dict[str, Any] = {
        "resolved": _resolved(spec),
        "shapes": _whole_shapes(spec),
        "scales": scales,
        "seeds": _seeds(spec),
        "formats": spec.formats,
        "terms": {name: terms[name] for name in results},
    }
    given = {
        "resolved": metadata["resolved"],
        "shapes": metadata["shapes"],
        "scales": {name: metadata["scales"].get(name) for name in scales},
        "seeds": metadata.get("seeds"),
        "formats": metadata.get("formats", {}),
        "terms": metadata["tolerance"]["terms"],
    }
    for field, value in expected.items():
        if given[field] != value:
            raise GoldenFileError(
                f"{path}: metadata {field!r} is {given[field]!r}; case {spec.id} has {value!r}"
            )
    _check_centres(metadata, spec, results, path)
    return spec


#: The most a convention's relative scale error may be, in units of the dtype's roundoff.
_CENTRE_UNITS = 8


def _check_centres(
    metadata: dict[str, Any], spec: CaseSpec, results: list[str], path: Path
) -> None:
    """The bias check's centres (when given) must be a few small, finite numbers per result."""
    centres = metadata["tolerance"].get("bias", {})
    centres = centres.get("centres") if isinstance(centres, dict) else None
    if centres is None:  # a version 1 file: none
        return
    limit = _CENTRE_UNITS * unit_roundoff(spec.dtype)
    if not isinstance(centres, dict) or sorted(centres) != sorted(results) or not all(
        isinstance(values, list) and 1 <= len(values) <= 8
        and all(isinstance(c, (int, float)) and not isinstance(c, bool)
                and math.isfinite(c) and abs(c) <= limit for c in values)
        for values in centres.values()
    ):  # fmt: skip
        raise GoldenFileError(
            f"{path}: metadata tolerance 'bias' 'centres' must give each result 1 to 8 "
            f"relative scale errors of at most {limit:.3g}"
        )


def _compact_counts(metadata: dict[str, Any], path: Path) -> dict[str, int] | None:
    """A compact fixture's number of positions per result (None for a full fixture)."""
    compact = metadata.get("compact")
    if compact is None:
        return None
    counts = compact.get("counts") if isinstance(compact, dict) else None
    if not isinstance(counts, dict) or not all(
        name in RESULT_NAMES and isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for name, n in counts.items()
    ):
        raise GoldenFileError(f"{path}: metadata 'compact' must give 'counts' per result")
    positions = compact.get("positions")
    if isinstance(positions, bool) or not isinstance(positions, int) or positions < 1:
        raise GoldenFileError(f"{path}: metadata 'compact' must give 'positions', an integer")
    return dict(counts)


def _kept_positions(
    metadata: dict[str, Any], results: list[str], path: Path
) -> dict[str, npt.NDArray[np.int64]]:
    """Where a compact fixture of this case keeps its expected values: each result's
    positions, recomputed from the case (the file's must be these)."""
    from .positions import counts_for, positions_for

    spec = spec_from_metadata(metadata, str(path))
    assert spec.compact is not None
    counts = counts_for(spec, spec.compact)  # the claim checked first: choosing costs more
    claimed = metadata["compact"]["counts"]
    if claimed != counts:
        raise GoldenFileError(
            f"{path}: metadata 'compact' counts {claimed} are not case {spec.id}'s, {counts}"
        )
    if sum(counts.values()) * 24 > MAX_FIXTURE_BYTES:
        raise GoldenFileError(
            f"{path}: {sum(counts.values()):,} positions would take more than "
            f"{MAX_FIXTURE_BYTES} bytes; refused"
        )
    return {name: positions_for(spec, name, spec.compact) for name in results}


def read(path: Path | str) -> Fixture:
    """Load a fixture file without ever unpickling; raise GoldenFileError on any problem.

    The metadata is read first; every array's shape and dtype are then
    judged from its ``.npy`` header against it before its data is read. A
    compact fixture's positions must lie inside their arrays, sorted.
    """
    path = Path(path)
    metadata = read_metadata(path)
    has_bias = bool(metadata["resolved"].get("has_bias"))
    counts = _compact_counts(metadata, path)
    inputs = ["input", "weight", "grad_output"] + (["bias"] if has_bias else [])
    results = ["output", "grad_input", "grad_weight"] + (["grad_bias"] if has_bias else [])
    required = [*results, *(f"error_scale_{name}" for name in results)]
    kept = None
    if counts is None:
        required += inputs
    else:
        required += [f"positions_{name}" for name in results]
        if sorted(counts) != sorted(results):
            raise GoldenFileError(f"{path}: metadata 'compact' counts must name {results}")
        kept = _kept_positions(metadata, results, path)
        if counts != {name: int(p.size) for name, p in kept.items()}:
            raise GoldenFileError(
                f"{path}: metadata 'compact' counts {counts} are not case {metadata['id']}'s, "
                f"{ {name: int(p.size) for name, p in kept.items()} }"
            )
    allowed = {*required, "metadata"}
    dtype = np.dtype(STORAGE.get(metadata["dtype"], metadata["dtype"]))
    # Operands in a format of their own: stored in it since version 3 (as float32 before).
    formats = metadata.get("formats", {}) if metadata["format_version"] >= 3 else {}
    operands = {name: operand_file_dtype(format) for name, format in formats.items()}

    def judge(name: str, shape: tuple[int, ...], given: np.dtype[Any]) -> None:
        if name not in allowed:
            raise GoldenFileError(f"{path}: unexpected member {name!r}")
        if name == "metadata":
            return
        want = np.dtype(np.float64) if name.startswith("error_scale_") else dtype
        if name.startswith("positions_"):
            want = np.dtype(np.int64)
        if name in operands:
            want = operands[name]
        if given.newbyteorder("=") != want:
            raise GoldenFileError(f"{path}: array {name!r} has dtype {given}, expected {want}")
        key = name.removeprefix("error_scale_").removeprefix("positions_")
        expected = metadata["shapes"].get(key)
        if counts is not None and key in counts:
            expected = [counts[key]]
        if not isinstance(expected, list) or list(shape) != expected:
            raise GoldenFileError(
                f"{path}: array {name!r} has shape {shape}, metadata says {expected}"
            )

    arrays = read_npz(path, judge, MAX_FIXTURE_BYTES)
    arrays.pop("metadata", None)
    for name in sorted(allowed - {"metadata"}):
        if name not in arrays:
            raise GoldenFileError(f"{path}: missing array {name!r}")
        if name in results and name not in metadata["tolerance"]["terms"]:
            raise GoldenFileError(f"{path}: no term count for {name!r} in the metadata")
    for name in results:
        error_scale = arrays[f"error_scale_{name}"]
        if not np.all((error_scale >= 0) & np.isfinite(error_scale)):
            raise GoldenFileError(
                f"{path}: error_scale_{name} must hold finite, non-negative magnitudes"
            )
        if np.any(np.isnan(arrays[name])):  # drawn inputs are finite: so are their sums
            raise GoldenFileError(f"{path}: expected {name} holds NaN; no case's sums do")
    for name, positions in (kept or {}).items():
        if not np.array_equal(arrays[f"positions_{name}"], positions):
            raise GoldenFileError(
                f"{path}: positions_{name} are not the positions case {metadata['id']} keeps "
                f"({positions.size} of them, from uscale_ref.golden.positions)"
            )
    return Fixture(id=str(metadata.get("id", path.stem)), metadata=metadata, arrays=arrays)
