"""The golden cases as data: one declarative spec per case, with a readable stable id.

A case id is built from the spec: the dtype's short name, then one token per
argument that differs from the default, e.g. ``c128_g2_s2_d2_p1_k4``:

=============  =================================================
token          meaning
=============  =================================================
``f16`` ...    dtype: f16, f32, f64, c64, c128, bf16, c32
``fp8``        float32 case whose inputs are FP8 values (E4M3, E5M2)
``xe4m3`` ...  an operand's own format: ``x`` input, ``w`` weight, ``g``
               grad_output; ``e4m3``, ``e5m2``, ``use4m3``, ``use5m2``,
               ``bf16``, ``f16``
``k4``         kernel length K (always present)
``s2``         stride 2 (``st2`` when given as the tuple ``(2,)``)
``d2``         dilation 2 (``dt2`` for the tuple ``(2,)``)
``p1``         padding 1; ``pt1`` for the tuple ``(1,)``; ``valid``; ``same``
``g2``         groups 2 (``dw`` when depthwise, groups == C == C_out)
``ub``         unbatched input ``(C, L)``
``nobias``     no bias
``none`` ...   constraint other than the default (``none`` for None)
``pw...``      scale_power other than (0.5, 0.5, 0.5)
``n3c8o8l40``  sizes other than the defaults N=2, C=4, C_out=6 (o), L=16
=============  =================================================
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..formats import STORAGE
from ..geometry import Conv1dGeometry, conv1d_geometry
from ..scales import conv1d_scales

DTYPE_TOKENS = {
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "complex64": "c64",
    "complex128": "c128",
    "bfloat16": "bf16",
    "complex32": "c32",
}
# Every geometry of a suite comes in these dtypes ...
FULL_DTYPES = ("float16", "float32", "float64", "complex64", "complex128")
DTYPES = tuple(DTYPE_TOKENS)
# ... and a few in bfloat16 and complex32, stored as float32 / complex64 arrays
# holding representable values (formats.STORAGE).
# The FP8 recipe of the unit scaling paper: E4M3 for activations and weights,
# E5M2 for gradients, accumulated in float32.
FP8_FORMATS = {"input": "float8_e4m3fn", "weight": "float8_e4m3fn", "grad_output": "float8_e5m2"}
#: The formats an operand may be narrower in than the results (``input=``, ``weight=``,
#: ``grad_output=`` of a case): the 8-bit ones (OCP and unit_scaling's), bfloat16 and float16.
OPERAND_FORMATS = ("float8_e4m3fn", "float8_e5m2", "unit_scaling_e4m3", "unit_scaling_e5m2",
                   "bfloat16", "float16")  # fmt: skip
#: The results' dtypes a case with narrower operands may have.
MIXED_DTYPES = ("float32", "bfloat16", "float16")
#: Each operand format's token in a case id.
FORMAT_TOKENS = {"float8_e4m3fn": "e4m3", "float8_e5m2": "e5m2", "unit_scaling_e4m3": "use4m3",
                 "unit_scaling_e5m2": "use5m2", "bfloat16": "bf16", "float16": "f16"}  # fmt: skip
_OPERAND_LETTERS = {"input": "x", "weight": "w", "grad_output": "g"}

DEFAULT_SHAPE = {"N": 2, "C": 4, "O": 6, "L": 16}
#: The most elements any one array of a case may have (compact or not).
MAX_ELEMENTS = 2**40
#: The most input or output channels a case may have.
MAX_CHANNELS = 2**24


@dataclass(frozen=True)
class CaseSpec:
    """Everything that defines one golden case: dtype, sizes and conv1d's arguments.

    The inputs are drawn from the case's id (a hash of it seeds each array),
    so a spec alone determines every byte of its fixture. Construction
    checks the spec as :func:`uscale_ref.conv1d` would check the arguments.

    Parameters
    ----------
    dtype : str
        ``float16``, ``float32``, ``float64``, ``complex64``, ``complex128``,
        ``bfloat16`` or ``complex32``.
    kernel_size : int
        ``K`` (default 3, as on the command line).
    batch_size : int or None
        ``N``; None for unbatched input ``(C, L)``.
    in_channels, out_channels, length : int
        ``C``, ``O`` (C_out) and ``L``.
    stride, padding, dilation, groups, constraint, scale_power
        As for :func:`uscale_ref.conv1d`.
    bias : bool
        Whether the case has a bias.
    fp8 : bool
        A float32 case whose inputs are FP8 values (E4M3 input and weight,
        E5M2 grad_output): the same as those three formats below.
    compact : int or None
        A compact fixture: no input arrays (they are regenerated from their
        seeds), and each result's expected values at about this many
        positions only (:mod:`uscale_ref.golden.positions`). Its inputs
        are the full case's.
    suite : str
        The name of the suite the case is written into (part of the
        fixture's metadata, not of its id).
    input_format, weight_format, grad_output_format : str or None
        A format the operand's values lie in, narrower than the results'
        ``dtype`` (one of :data:`OPERAND_FORMATS`; ``dtype`` then float32,
        bfloat16 or float16): a mixed-precision case, such as the unit-scaling
        FP8 recipe, E4M3 input and weight and E5M2 grad_output with bfloat16
        results. The expected results are exact from these values, rounded
        once to ``dtype``; the bias stays in ``dtype``.

    Examples
    --------
    >>> spec = CaseSpec("float32", kernel_size=9, batch_size=8, in_channels=256,
    ...                 out_channels=256, length=4096, padding="same")
    >>> spec.id
    'f32_n8c256o256l4096_same_k9'
    >>> CaseSpec("float32", kernel_size=3, in_channels=6, groups=4)
    Traceback (most recent call last):
    ...
    ValueError: groups=4 must divide the input channels C=6
    """

    dtype: str
    kernel_size: int = 3
    batch_size: int | None = 2  # None: unbatched
    in_channels: int = 4
    out_channels: int = 6
    length: int = 16
    stride: int | tuple[int] = 1
    padding: int | tuple[int] | str = 0
    dilation: int | tuple[int] = 1
    groups: int = 1
    bias: bool = True
    constraint: str | None = "to_output_scale"
    scale_power: tuple[float, float, float] = (0.5, 0.5, 0.5)
    fp8: bool = False  # float32 case whose inputs are FP8 values (FP8_FORMATS)
    compact: int | None = None  # positions per result array, or None for the full arrays
    suite: str = field(default="custom", compare=False)
    input_format: str | None = None  # the operands' formats, when narrower than the results
    weight_format: str | None = None
    grad_output_format: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        sizes = {
            "kernel_size": self.kernel_size,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "length": self.length,
        }
        if self.batch_size is not None:
            sizes["batch_size"] = self.batch_size
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        for name in ("bias", "fp8"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.fp8 and self.dtype != "float32":
            raise ValueError(f"fp8 cases are float32 cases, got dtype {self.dtype!r}")
        self._settle_formats()
        if self.compact is not None and (
            isinstance(self.compact, bool) or not isinstance(self.compact, int) or self.compact < 1
        ):
            raise ValueError(
                f"compact must be a number of positions of at least 1, or None, got "
                f"{self.compact!r}"
            )
        if not isinstance(self.suite, str) or not self.suite:
            raise ValueError(f"suite must be a non-empty name, got {self.suite!r}")
        if self.scale_power is not None and not isinstance(self.scale_power, (str, bytes)):
            # One hashable form, so equal specs compare and hash equal.
            try:
                power = tuple(float(p) for p in self.scale_power)
            except (TypeError, ValueError):
                power = self.scale_power
            object.__setattr__(self, "scale_power", power)
        # conv1d's own checks: every argument named in the message.
        conv1d_scales(self.input_shape, self.weight_shape, **self.conv_kwargs)
        for name in ("in_channels", "out_channels"):
            if getattr(self, name) > MAX_CHANNELS:
                raise ValueError(
                    f"{name} must be at most 2**24, got {getattr(self, name)} (a compact "
                    "fixture orders every channel)"
                )
        for name, shape in (("input", self.input_shape), ("weight", self.weight_shape),
                            ("output", self.geometry.output_shape)):  # fmt: skip
            if math.prod(shape) > MAX_ELEMENTS:
                raise ValueError(
                    f"the {name} of shape {shape} has more than 2**40 elements; a case's "
                    "arrays must be addressable (smaller N, C, O, L or K)"
                )

    def _settle_formats(self) -> None:
        """One form for each case: ``fp8=True`` and its three formats are the same case."""
        names = ("input_format", "weight_format", "grad_output_format")
        given = {name: getattr(self, name) for name in names}
        for name, value in given.items():
            if value is not None and value not in OPERAND_FORMATS:
                raise ValueError(
                    f"{name.removesuffix('_format')} must be one of {list(OPERAND_FORMATS)}, "
                    f"got {value!r}"
                )
        fp8 = {f"{k}_format": v for k, v in FP8_FORMATS.items()}
        if self.fp8:
            if any(v is not None and v != fp8[k] for k, v in given.items()):
                raise ValueError("fp8=True names the operands' formats; give one or the other")
            given = fp8
        if any(v is not None for v in given.values()) and self.dtype not in MIXED_DTYPES:
            raise ValueError(
                f"operands in narrower formats need results in one of {list(MIXED_DTYPES)}, "
                f"got dtype {self.dtype!r}"
            )
        for name, value in given.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "fp8", self.dtype == "float32" and given == fp8)

    @property
    def storage_dtype(self) -> str:
        """The NumPy dtype of the stored arrays (float32 for bfloat16, complex64 for complex32)."""
        return STORAGE.get(self.dtype, self.dtype)

    def operand_dtype(self, name: str) -> str:
        """The NumPy dtype that holds input array ``name``: float32 for an operand in a
        narrower format of its own, else the storage dtype."""
        return "float32" if name in self.formats else self.storage_dtype

    @property
    def formats(self) -> dict[str, str]:
        """The format each operand's values lie in, where it is narrower than ``dtype``."""
        named = {"input": self.input_format, "weight": self.weight_format,
                 "grad_output": self.grad_output_format}  # fmt: skip
        return {name: value for name, value in named.items() if value is not None}

    @property
    def conv_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`uscale_ref.conv1d` and ``conv1d_backward``."""
        return {
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "constraint": self.constraint,
            "scale_power": self.scale_power,
        }

    @property
    def geometry(self) -> Conv1dGeometry:
        """Every size of the case, resolved (:func:`uscale_ref.conv1d_geometry`)."""
        return conv1d_geometry(
            self.input_shape,
            self.weight_shape,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        inner = (self.in_channels, self.length)
        return inner if self.batch_size is None else (self.batch_size, *inner)

    @property
    def weight_shape(self) -> tuple[int, int, int]:
        groups = self.groups if isinstance(self.groups, int) and self.groups >= 1 else 1
        return (self.out_channels, self.in_channels // groups, self.kernel_size)

    @property
    def id(self) -> str:
        """The readable id: the full case's, with ``_compact<N>`` for a compact fixture."""
        return self.input_id + ("" if self.compact is None else f"_compact{self.compact}")

    @property
    def input_id(self) -> str:
        """The id the inputs are drawn from: the full case's, compact or not."""
        tokens = [DTYPE_TOKENS[self.dtype]]
        if self.fp8:
            tokens.append("fp8")
        else:
            tokens += [_OPERAND_LETTERS[name] + FORMAT_TOKENS[value]
                       for name, value in self.formats.items()]  # fmt: skip
        shape = {
            "N": self.batch_size,
            "C": self.in_channels,
            "O": self.out_channels,
            "L": self.length,
        }
        if self.batch_size is None:
            tokens.append("ub")
            shape["N"] = DEFAULT_SHAPE["N"]
        changed = "".join(f"{k.lower()}{v}" for k, v in shape.items() if DEFAULT_SHAPE[k] != v)
        if changed:
            tokens.append(changed)
        depthwise = self.groups == self.in_channels == self.out_channels and self.groups > 1
        if depthwise:
            tokens.append("dw")
        elif self.groups != 1:
            tokens.append(f"g{self.groups}")
        for value, letter in ((self.stride, "s"), (self.dilation, "d")):
            if isinstance(value, tuple):
                tokens.append(f"{letter}t{value[0]}")
            elif value != 1:
                tokens.append(f"{letter}{value}")
        if isinstance(self.padding, str):
            tokens.append(self.padding)
        elif isinstance(self.padding, tuple):
            tokens.append(f"pt{self.padding[0]}")
        elif self.padding:
            tokens.append(f"p{self.padding}")
        tokens.append(f"k{self.kernel_size}")
        if not self.bias:
            tokens.append("nobias")
        if self.constraint != "to_output_scale":
            tokens.append(self.constraint or "none")
        if self.scale_power != (0.5, 0.5, 0.5):
            tokens.append("pw" + "-".join(f"{p:g}" for p in self.scale_power))
        return "_".join(tokens)


# The geometries every dtype gets: each dict overrides CaseSpec's defaults.
_GEOMETRIES: list[dict[str, Any]] = [
    {"kernel_size": 3},
    {"kernel_size": 1},
    {"kernel_size": 5, "padding": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 2, "stride": 5},  # stride longer than the kernel: skipped inputs
    {"kernel_size": 4, "stride": 3, "dilation": 2, "padding": 2},
    {"kernel_size": 3, "stride": (2,), "padding": (1,), "dilation": (2,)},
    {"kernel_size": 3, "padding": "valid"},
    {"kernel_size": 3, "padding": "same"},  # total padding 2: symmetric
    {"kernel_size": 4, "padding": "same"},  # total 3: the extra zero on the right
    {"kernel_size": 4, "padding": "same", "dilation": 2},  # total 6
    {"kernel_size": 4, "padding": "same", "dilation": 3},  # total 9
    {"kernel_size": 2, "padding": "same"},  # total 1: all on the right
    {"kernel_size": 3, "dilation": 2},
    {"kernel_size": 3, "dilation": 3, "padding": 3},
    {"kernel_size": 3, "groups": 2},
    {"kernel_size": 4, "groups": 2, "stride": 2, "dilation": 2, "padding": 1},
    {"kernel_size": 3, "groups": 4, "out_channels": 4, "padding": 1},  # depthwise
    {"kernel_size": 4, "groups": 4, "out_channels": 4, "padding": "same"},
    {"kernel_size": 3, "groups": 4, "out_channels": 8},  # channel multiplier 2
    {"kernel_size": 3, "groups": 2, "out_channels": 2},  # one output channel per group
    {"kernel_size": 5, "length": 5},  # output of length 1
    {"kernel_size": 3, "length": 6, "stride": 4},  # output of length 1, strided
    {"kernel_size": 3, "length": 3, "padding": 4},  # padding longer than the input
    {"kernel_size": 3, "batch_size": None, "padding": 1},
    {"kernel_size": 4, "batch_size": None, "padding": "same", "groups": 2},
    {"kernel_size": 3, "batch_size": None, "stride": 2, "dilation": 2},
    {"kernel_size": 3, "bias": False},
    {"kernel_size": 3, "bias": False, "groups": 2, "stride": 2},
    {"kernel_size": 3, "constraint": None},
    {"kernel_size": 3, "constraint": "gmean", "stride": 2},
    {"kernel_size": 3, "constraint": "hmean", "groups": 2},
    {"kernel_size": 3, "constraint": "amean", "padding": 1},
    {"kernel_size": 3, "constraint": "to_grad_input_scale", "stride": 2},
    {"kernel_size": 3, "scale_power": (1.0, 0.25, 0.75)},
    {"kernel_size": 3, "scale_power": (0.0, 0.0, 0.0), "constraint": None},
    {
        "kernel_size": 7,
        "batch_size": 3,
        "in_channels": 8,
        "out_channels": 8,
        "length": 40,
        "padding": 3,
        "groups": 2,
    },
]

# Larger shapes, generated on demand (not committed): fixtures for kernels
# whose blocking only shows on longer rows and more channels.
_LARGE: list[dict[str, Any]] = [
    {
        "kernel_size": 9,
        "batch_size": 4,
        "in_channels": 16,
        "out_channels": 16,
        "length": 512,
        "padding": 4,
    },
    {
        "kernel_size": 5,
        "batch_size": 4,
        "in_channels": 32,
        "out_channels": 32,
        "length": 256,
        "padding": "same",
        "groups": 32,
    },
    {
        "kernel_size": 4,
        "batch_size": 2,
        "in_channels": 16,
        "out_channels": 32,
        "length": 1024,
        "stride": 4,
    },
    {
        "kernel_size": 3,
        "batch_size": 2,
        "in_channels": 16,
        "out_channels": 16,
        "length": 512,
        "dilation": 8,
        "padding": 8,
        "groups": 4,
    },
]

# Low-precision cases of the standard suite: (dtype, fp8, geometry).
_LOW_PRECISION: list[tuple[str, bool, dict[str, Any]]] = [
    (dtype, fp8, geometry)
    for dtype, fp8 in (("bfloat16", False), ("complex32", False), ("float32", True))
    for geometry in (
        {"kernel_size": 3},
        {"kernel_size": 4, "padding": "same"},
        {"kernel_size": 4, "groups": 2, "stride": 2, "dilation": 2, "padding": 1},
        {"kernel_size": 3, "groups": 4, "out_channels": 4, "padding": 1},
        {"kernel_size": 3, "batch_size": None, "stride": 2, "dilation": 2},
        {"kernel_size": 7, "batch_size": 3, "in_channels": 8, "out_channels": 8,
         "length": 40, "padding": 3, "groups": 2},
    )
]  # fmt: skip

SUITES = {"standard": _GEOMETRIES, "large": _LARGE}


def suite_specs(suite: str = "standard") -> list[CaseSpec]:
    """Every case of a suite, all dtypes, in a fixed order."""
    if suite not in SUITES:
        raise ValueError(f"suite must be one of {sorted(SUITES)}, got {suite!r}")
    specs = [
        CaseSpec(dtype=dtype, suite=suite, **geometry)
        for geometry in SUITES[suite]
        for dtype in FULL_DTYPES
    ]
    if suite == "standard":
        specs += [
            CaseSpec(dtype=dtype, fp8=fp8, suite=suite, **geometry)
            for dtype, fp8, geometry in _LOW_PRECISION
        ]
    ids = [spec.id for spec in specs]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:  # pragma: no cover - guards the table above
        raise RuntimeError(f"duplicate golden case ids: {sorted(duplicates)}")
    return specs


def select(
    specs: Iterable[CaseSpec],
    dtypes: Iterable[str] | None = None,
    pattern: str | None = None,
) -> list[CaseSpec]:
    """The specs of the given dtypes whose id matches a shell-style ``pattern``."""
    wanted = None if dtypes is None else set(dtypes)
    if wanted is not None and not wanted <= set(DTYPES):
        raise ValueError(f"dtype must be among {list(DTYPES)}, got {sorted(wanted - set(DTYPES))}")
    return [
        spec
        for spec in specs
        if (wanted is None or spec.dtype in wanted)
        and (pattern is None or fnmatch.fnmatchcase(spec.id, pattern))
    ]
