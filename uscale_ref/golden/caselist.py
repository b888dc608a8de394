"""Your own cases as text: ``key=value`` lists for the command line, and JSON or TOML files.

One case is a set of keys, every one optional (the defaults are
:class:`~uscale_ref.golden.CaseSpec`'s):

- ``dtype``: float16, float32 (default), float64, complex64, complex128,
  bfloat16 or complex32;
- ``N`` (2), ``C`` (4), ``L`` (16), ``O`` (6), ``K`` (3): batch size, input
  channels, input length, output channels, kernel length;
- ``stride``, ``dilation`` (1): an int, or ``(2,)`` for a one-element tuple;
- ``padding`` (0): an int, ``(1,)``, ``same`` or ``valid``;
- ``groups`` (1): an int dividing C and O;
- ``bias`` (true), ``batched`` (true; false for input ``(C, L)``), ``fp8``
  (false; float32 cases only): true or false;
- ``input``, ``weight``, ``grad_output``: the format an operand's values lie
  in when narrower than the results' ``dtype`` (then float32, bfloat16 or
  float16): float8_e4m3fn, float8_e5m2, unit_scaling_e4m3,
  unit_scaling_e5m2, bfloat16 or float16 (``fp8=true`` is float8_e4m3fn,
  float8_e4m3fn, float8_e5m2 with float32 results);
- ``constraint`` (to_output_scale): None, gmean, hmean, amean,
  to_output_scale or to_grad_input_scale;
- ``scale_power`` (0.5:0.5:0.5): three numbers;
- ``compact``: a number of positions per result array, for a compact fixture
  (no inputs stored, expected values at those positions only).

On the command line a case is ``"dtype=float32,N=8,C=256,L=4096,O=256,K=9,padding=same"``.
In a JSON file: a list of such objects (or ``{"cases": [...]}``), with JSON's own
types where they fit (``"padding": "same"``, ``"constraint": null``,
``"scale_power": [1, 0.25, 0.75]``, ``"stride": [2]`` for a tuple); in a TOML file:
``[[case]]`` tables with the same keys (``constraint = "None"``: TOML has no null).

>>> parse_case("dtype=float64,C=8,O=8,K=5,padding=same,groups=2").id
'f64_c8o8_g2_same_k5'
>>> parse_case("K=3,colour=red")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: case 'K=3,colour=red': unknown key 'colour'; the keys are dtype, N, C, L, O, K, ...
"""

from __future__ import annotations

import importlib
import json
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import GoldenFileError
from .suite import CaseSpec

__all__ = ["KEYS", "parse_case", "read_cases", "spec_from_mapping"]

KEYS = (
    "dtype", "N", "C", "L", "O", "K", "stride", "padding", "dilation", "groups",
    "bias", "constraint", "scale_power", "batched", "fp8", "compact",
    "input", "weight", "grad_output",
)  # fmt: skip
_FIELDS = {"N": "batch_size", "C": "in_channels", "L": "length", "O": "out_channels",
           "K": "kernel_size"}  # fmt: skip
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
# A case file is a short list of keys, not data.
MAX_CASE_FILE_BYTES = 2**20


def _integer(text: object, key: str) -> int:
    if isinstance(text, bool):
        raise ValueError(f"key {key!r}: expected an integer, got {text!r}")
    if isinstance(text, int):
        return text
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"key {key!r}: expected an integer, got {text!r}") from None


def _int_or_tuple(value: object, key: str) -> int | tuple[int]:
    """``2``, ``"2"``, ``"(2,)"`` or ``[2]`` (the last two: PyTorch's one-element tuple)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"key {key!r}: a tuple must have one element, got {value!r}")
        return (_integer(value[0], key),)
    if isinstance(value, str) and value.strip().startswith("("):
        inner = value.strip()
        if not inner.endswith(",)"):
            raise ValueError(f"key {key!r}: write a one-element tuple as '(2,)', got {value!r}")
        return (_integer(inner[1:-2], key),)
    return _integer(value, key)


def _boolean(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"key {key!r}: expected true or false, got {value!r}")


def _padding(value: object) -> int | tuple[int] | str:
    if isinstance(value, str) and value.strip() in ("same", "valid"):
        return value.strip()
    try:
        return _int_or_tuple(value, "padding")
    except ValueError:
        raise ValueError(
            f"key 'padding': expected an integer, '(1,)', 'same' or 'valid', got {value!r}"
        ) from None


def _constraint(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value.strip() in ("None", "none", "null")):
        return None
    if not isinstance(value, str):
        raise ValueError(f"key 'constraint': expected a name or None, got {value!r}")
    return value.strip()


def _scale_power(value: object) -> tuple[float, ...]:
    items: list[Any] = list(value) if isinstance(value, (list, tuple)) else str(value).split(":")
    try:
        powers = tuple(float(item) for item in items)
    except (TypeError, ValueError):
        powers = ()
    if len(powers) != 3:
        raise ValueError(
            f"key 'scale_power': expected three numbers such as 0.5:0.5:0.5, got {value!r}"
        )
    return powers


def spec_from_mapping(case: Mapping[str, Any], where: str = "case") -> CaseSpec:
    """A :class:`CaseSpec` from the keys of the table above; ValueError naming the key."""
    unknown = [key for key in case if key not in KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(KEYS)}")
    fields: dict[str, Any] = {"dtype": "float32", "kernel_size": 3}
    try:
        for key, value in case.items():
            if key == "dtype":
                fields["dtype"] = str(value).strip()
            elif key in _FIELDS:
                fields[_FIELDS[key]] = _integer(value, key)
            elif key in ("stride", "dilation"):
                fields[key] = _int_or_tuple(value, key)
            elif key == "padding":
                fields["padding"] = _padding(value)
            elif key in ("groups", "compact"):
                fields[key] = _integer(value, key)
            elif key in ("bias", "fp8"):
                fields[key] = _boolean(value, key)
            elif key == "constraint":
                fields["constraint"] = _constraint(value)
            elif key == "scale_power":
                fields["scale_power"] = _scale_power(value)
            elif key in ("input", "weight", "grad_output"):
                fields[f"{key}_format"] = str(value).strip()
        if "batched" in case and not _boolean(case["batched"], "batched"):
            if "N" in case:
                raise ValueError("key 'N': an unbatched case (batched=false) has no batch size")
            fields["batch_size"] = None
        return CaseSpec(**fields)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where}: {error}") from None


def parse_case(text: str) -> CaseSpec:
    """A :class:`CaseSpec` from ``"key=value,key=value"`` (the keys of the table above)."""
    where = f"case {text!r}"
    case: dict[str, str] = {}
    for item in _split(text):
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals or not key:
            hint = ""
            if "scale_power" in case and not equals:
                hint = " (scale_power's three numbers are written with colons: 1:0.25:0.75)"
            raise ValueError(f"{where}: expected key=value, got {item!r}{hint}")
        if key in case:
            raise ValueError(f"{where}: key {key!r} given twice")
        case[key] = value.strip()
    return spec_from_mapping(case, where)


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses, so ``stride=(2,)`` stays whole."""
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    if current.strip() or items:
        items.append(current)
    return [item for item in items if item.strip()]


def read_cases(path: Path | str) -> list[CaseSpec]:
    """The cases of a ``.json`` or ``.toml`` file (see the module docstring)."""
    path = Path(path)
    try:
        # Judged before it is opened: opening a FIFO for reading would wait for a writer.
        if not stat.S_ISREG(path.stat().st_mode):
            raise GoldenFileError(f"{path}: not a regular file; a case file must be one")
        with open(path, "rb") as stream:
            data = stream.read(MAX_CASE_FILE_BYTES + 1)
    except OSError as error:
        raise GoldenFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    if len(data) > MAX_CASE_FILE_BYTES:
        raise GoldenFileError(f"{path}: larger than {MAX_CASE_FILE_BYTES} bytes; refused")
    try:
        text = data.decode()
        if path.suffix.lower() == ".toml":
            document: Any = _toml().loads(text)
            listed = document.get("case")
        elif path.suffix.lower() == ".json":
            document = json.loads(text)
            listed = document.get("cases") if isinstance(document, dict) else document
        else:
            raise GoldenFileError(f"{path}: a case file must end in .json or .toml")
    except (UnicodeDecodeError, ValueError) as error:
        if isinstance(error, GoldenFileError):
            raise
        raise GoldenFileError(f"{path}: not readable as {path.suffix[1:]} ({error})") from None
    if not isinstance(listed, list) or not listed:
        raise GoldenFileError(
            f"{path}: expected a non-empty list of cases "
            '(JSON: a list or {"cases": [...]}; TOML: [[case]] tables)'
        )
    specs = []
    for number, case in enumerate(listed, start=1):
        if not isinstance(case, dict):
            raise GoldenFileError(f"{path}: case {number} must be a table of keys, got {case!r}")
        specs.append(spec_from_mapping(case, f"{path}: case {number}"))
    return specs


def _toml() -> Any:
    """The TOML reader: the standard library's (3.11+) or the ``tomli`` package."""
    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise GoldenFileError(
        "reading TOML needs Python 3.11 or the 'tomli' package; or use a .json file"
    )
