"""A correct evaluation of a case in its own dtype: what an accurate kernel's errors look like.

uscale_ref's own kernels in the case's dtype (float16 accumulated in float32
and rounded once; bfloat16 and complex32 computed in float32 / complex64 and
rounded once to their formats) are one correct kernel among many; their
precision on the same case is printed beside a failing kernel's and drawn
beside its error histogram.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ..golden.fixture import Fixture

__all__ = ["correct_results"]


def _round_parts(a: npt.NDArray[Any], dtype: str) -> npt.NDArray[Any]:
    """float32 / complex64 values rounded to bfloat16 / complex32, kept in the storage dtype."""
    from ..formats import round_to

    if dtype == "bfloat16":
        return round_to(a, "bfloat16")
    rounded = np.empty_like(a)
    rounded.real = a.real.astype(np.float16)
    rounded.imag = a.imag.astype(np.float16)
    return rounded


def correct_results(
    fixture: Fixture, names: Iterable[str] | None = None
) -> dict[str, npt.NDArray[Any]]:
    """``output`` and the gradients (or those of ``names``) computed by uscale_ref in the
    case's dtype (storage dtype for bfloat16 and complex32, rounded to their formats)."""
    from ..functional import conv1d, conv1d_backward

    wanted = set(fixture.expected if names is None else names)
    x, w, b, g = (fixture.inputs[k] for k in ("input", "weight", "bias", "grad_output"))
    kwargs = fixture.kwargs
    results: dict[str, Any] = {}
    with np.errstate(all="ignore"):
        if "output" in wanted:
            results["output"] = conv1d(x, w, b, **kwargs)
        if wanted - {"output"}:
            results.update(conv1d_backward(g, x, w, b, **kwargs)._asdict())
    narrow = fixture.dtype in ("bfloat16", "complex32")
    return {
        name: _round_parts(np.asarray(value), fixture.dtype) if narrow else np.asarray(value)
        for name, value in results.items()
        if value is not None and name in fixture.expected and name in wanted
    }
