"""The fast kernels: the textbook's sums, blocked and batched for speed, held to it on every path.

Each kernel takes batched arrays, a resolved geometry and a :class:`Plan`
(which path, which block sizes; :mod:`uscale_ref.kernels.plan`) and returns
the working-dtype result. :func:`plan_for` chooses the plan the public
functions use; tests pass other valid plans to run every path.

- :func:`forward` (:mod:`~uscale_ref.kernels.forward`) — the forward sum;
- :func:`input_grad` (:mod:`~uscale_ref.kernels.dgrad`) — dgrad, polyphase;
- :func:`weight_grad` (:mod:`~uscale_ref.kernels.wgrad`) — wgrad;
- :mod:`~uscale_ref.kernels.folded` — the batch laid end to end, one product per tap;
- :mod:`~uscale_ref.kernels.banded` — band-matrix products for depthwise layers;
- :mod:`~uscale_ref.kernels.blocks` — the block driver all of them share.
"""

from __future__ import annotations

import functools
from typing import Any

import array_api_compat

from .._backend import Namespace, itemsize, on_accelerator
from ..config import get_workspace_bytes
from ..geometry import Conv1dGeometry
from .dgrad import input_grad
from .forward import forward
from .plan import Op, Path, Plan, make_plan, valid_paths
from .wgrad import weight_grad

__all__ = ["Plan", "forward", "input_grad", "make_plan", "plan_for", "valid_paths", "weight_grad"]


def plan_for(
    op: Op,
    xp: Namespace,
    geometry: Conv1dGeometry,
    work_dtype: Any,
    path: Path | None = None,
    *,
    like: Any = None,
) -> Plan:
    """The plan for ``op`` in ``xp`` with the current workspace setting.

    JAX code may be traced (under ``jax.jit``), where data cannot be looked
    at before it is computed, so the band-matrix path with its finiteness
    check is never chosen for JAX, and dgrad takes exact edges there.
    ``like`` is one of the call's arrays: when it lives on a GPU
    (:func:`~uscale_ref._backend.on_accelerator`) the plan is the
    accelerator's (see :func:`~uscale_ref.kernels.plan.make_plan`).
    """
    workspace_bytes = get_workspace_bytes()
    accelerator = like is not None and on_accelerator(like)
    key = (op, xp, geometry, work_dtype, path, workspace_bytes, accelerator)
    try:
        return _cached_plan(*key)
    except TypeError:  # a dtype that cannot be hashed: plan without the cache
        return _cached_plan.__wrapped__(*key)


@functools.lru_cache(maxsize=1024)
def _cached_plan(
    op: Op,
    xp: Namespace,
    geometry: Conv1dGeometry,
    work_dtype: Any,
    path: Path | None,
    workspace_bytes: int,
    accelerator: bool,
) -> Plan:
    eager = not array_api_compat.is_jax_namespace(xp)
    size = itemsize(xp, work_dtype)
    return make_plan(
        op, geometry, size, workspace_bytes, path=path, eager=eager, accelerator=accelerator
    )
