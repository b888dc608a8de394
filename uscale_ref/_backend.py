"""Array-API plumbing: namespace and device resolution, and the dtype policy.

The dtype policy, in one place:

* accepted: float16, float32, float64, complex64 and complex128, and where
  the array library has them bfloat16 (torch; NumPy with ``ml_dtypes``) and
  complex32 (torch); integer, bool and 8-bit float arrays are refused, never
  promoted;
* input, weight, bias and grad_output must share one dtype and one device;
* float16 and bfloat16 are accumulated in float32, complex32 in complex64,
  and rounded once at the end (as GPU libraries do); every other dtype is
  computed in itself, so float32 work never silently becomes float64 work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

import array_api_compat
import numpy as np

Array = Any
Namespace = Any

__all__ = [
    "Array",
    "Namespace",
    "check_arrays",
    "compute_dtype",
    "conj_if_complex",
    "device_of",
    "from_work",
    "is_writeable",
    "itemsize",
    "on_accelerator",
    "to_work",
]


def device_of(x: Array) -> Any:
    """The device an array lives on (as ``array_api_compat.device``)."""
    return array_api_compat.device(x)


def on_accelerator(x: Array) -> bool:
    """Whether ``x`` lives in a GPU's (or other accelerator's) memory rather than the host's.

    CuPy arrays always do; torch tensors and JAX arrays say so by their
    device (a JAX value traced under ``jit`` has none and counts as host).
    Every other library here keeps its arrays on the host.
    """
    if array_api_compat.is_cupy_array(x):
        return True
    if array_api_compat.is_torch_array(x):
        return str(x.device.type) not in ("cpu", "meta")
    if array_api_compat.is_jax_array(x):
        device = array_api_compat.device(x)
        return device is not None and getattr(device, "platform", "cpu") != "cpu"
    return False


F = TypeVar("F", bound=Callable[..., Any])


def ieee_quiet(function: F) -> F:
    """Run ``function`` under ``np.errstate(all="ignore")``.

    Overflow to inf, underflow to subnormals and zero, and NaN from
    ``0 * inf`` are the IEEE results a reference must give; a caller's
    ``np.seterr(all="raise")`` would turn them into exceptions instead.
    """

    @functools.wraps(function)
    def quiet(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)

    return cast(F, quiet)


def has_values(x: Array) -> bool:
    """Whether ``x``'s values can be read (False for torch's ``meta`` tensors: shapes only)."""
    return not (array_api_compat.is_torch_array(x) and str(x.device.type) == "meta")


def is_writeable(x: Array) -> bool:
    """Whether slices of ``x`` can be assigned in place (False for JAX arrays)."""
    return bool(array_api_compat.is_writeable_array(x))


def _describe(x: object) -> str:
    return type(x).__module__.split(".")[0] + "." + type(x).__name__


def _refuse_unsupported_kind(name: str, x: Array) -> None:
    """Array kinds that look like arrays but whose arithmetic is not the dense sums here."""
    module = type(x).__module__
    if module.startswith("numpy.ma"):
        raise TypeError(
            f"{name} is a NumPy masked array, which uscale_ref does not support: pass "
            f"x.filled(0) (or another fill value) to say what the masked entries are"
        )
    layout = getattr(x, "layout", None)
    if module.startswith("torch") and layout is not None and str(layout) != "torch.strided":
        raise TypeError(
            f"{name} is a torch tensor with layout {layout}; only dense (strided) tensors are "
            "supported: convert it with .to_dense()"
        )
    if type(x).__name__ in ("BCOO", "BCSR") or module.startswith(("scipy.sparse", "sparse")):
        raise TypeError(f"{name} is a sparse array ({_describe(x)}); pass a dense array")


def check_arrays(**arrays: Array | None) -> Namespace:
    """Check named arrays against the dtype policy and return their namespace.

    ``bias`` may be ``None`` (it is then ignored); every other array is
    required. The first array given is the reference for dtype and device.

    Raises
    ------
    TypeError
        An argument that is not an array, arrays from different libraries, a
        non-floating dtype, or mixed dtypes.
    ValueError
        Arrays on different devices.
    """
    present: dict[str, Array] = {
        name: x for name, x in arrays.items() if not (name == "bias" and x is None)
    }
    for name, x in present.items():
        if not array_api_compat.is_array_api_obj(x):
            raise TypeError(
                f"{name} must be an array of an Array API library (NumPy, CuPy, torch, ...), "
                f"got {_describe(x)}"
            )
        _refuse_unsupported_kind(name, x)
    try:
        xp = array_api_compat.array_namespace(*present.values())
    except TypeError:
        kinds = ", ".join(f"{name}: {_describe(x)}" for name, x in present.items())
        raise TypeError(f"arrays must all come from one array library, got {kinds}") from None

    (first_name, first), *others = present.items()
    if dtype_name(first.dtype) not in SUPPORTED:
        raise TypeError(
            f"{first_name} must have a floating dtype: float16, float32, float64, complex64 or "
            "complex128 (bfloat16 and complex32 where the library has them), got "
            f"{first.dtype}; convert it explicitly"
        )
    reference_device = device_of(first)
    for name, x in others:
        if x.dtype != first.dtype:
            raise TypeError(
                f"{name} must have the same dtype as {first_name} ({first.dtype}), got {x.dtype}"
            )
        # Traced arrays (inside jax.vmap) may report no device: nothing to compare.
        if None not in (device_of(x), reference_device) and device_of(x) != reference_device:
            raise ValueError(
                f"{name} must be on the same device as {first_name} ({reference_device}), "
                f"got {device_of(x)}"
            )
    return xp


SUPPORTED = ("float16", "bfloat16", "float32", "float64", "complex32", "complex64", "complex128")
# Narrow dtypes and the dtype their sums are accumulated in.
_WIDER = {"float16": "float32", "bfloat16": "float32", "complex32": "complex64"}


def dtype_name(dtype: Any) -> str:
    """``"float32"``, ``"bfloat16"``, ... for a NumPy, torch, JAX or array-api-strict dtype."""
    kind = cast(Hashable, type(dtype))  # classes hash; typeshed does not say so
    try:
        return _cached_dtype_name(kind, dtype)
    except TypeError:  # a dtype that cannot be hashed
        return _cached_dtype_name.__wrapped__(kind, dtype)


# A NumPy dtype computes its name in Python each time it is asked (about
# 5 us, several times per call): a real share of a small convolution's cost.
# The key leads with the dtype's type, so that dtypes of different libraries
# are told apart without being compared (array-api-strict warns when its
# dtypes are compared with NumPy's).
@functools.lru_cache(maxsize=64)
def _cached_dtype_name(kind: Hashable, dtype: Any) -> str:
    return str(getattr(dtype, "name", None) or dtype).rsplit(".", 1)[-1]


def compute_dtype(xp: Namespace, dtype: Any) -> Any:
    """The dtype arithmetic is done in: float32 for float16 and bfloat16, complex64 for
    complex32, else ``dtype`` itself."""
    wider = _WIDER.get(dtype_name(dtype))
    return dtype if wider is None else getattr(xp, wider)


def to_work(xp: Namespace, x: Array, *, add_batch_axis: bool = False) -> Array:
    """Cast to the working dtype (:func:`compute_dtype`), optionally adding a batch axis."""
    work_dtype = compute_dtype(xp, x.dtype)
    if work_dtype != x.dtype:
        x = xp.astype(x, work_dtype)
    return xp.expand_dims(x, axis=0) if add_batch_axis else x


def from_work(xp: Namespace, x: Array, dtype: Any, *, drop_batch_axis: bool = False) -> Array:
    """Round once to the caller's ``dtype``, optionally removing the batch axis."""
    if x.dtype != dtype:
        x = xp.astype(x, dtype)
    return x[0, ...] if drop_batch_axis else x


def itemsize(xp: Namespace, dtype: Any) -> int:
    """Bytes per element of a floating ``dtype`` (complex: both parts)."""
    return int(xp.finfo(dtype).bits // 8) * (2 if xp.isdtype(dtype, "complex floating") else 1)


def conj_if_complex(xp: Namespace, x: Array) -> Array:
    """``conj(x)`` for complex ``x``; real arrays are returned as they are."""
    return xp.conj(x) if xp.isdtype(x.dtype, "complex floating") else x
