"""The products every path ends in: a group's channel sum per tap, or all taps stacked.

Arrays are laid out by group: matrices ``(G, P, Q)`` and columns
``(N, G, Q, B)`` (``Q`` the channels summed, ``B`` the block's positions),
giving ``(N, G, P, B)``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat

from .._backend import Array, Namespace

__all__ = ["contract", "matmul", "stack_taps", "sum_over_taps", "vecdot"]


def _full_precision(xp: Namespace) -> dict[str, Any]:
    """Keywords that make ``xp``'s products keep the precision of their dtype.

    JAX multiplies float32 (and complex64) matrices on NVIDIA GPUs in
    reduced precision unless asked otherwise: on an H200 the kernels'
    float32 results were off by up to 8.4e3 units of rounding, the
    element-wise textbook not at all. ``precision="highest"`` asks for full
    precision. The other libraries multiply in full precision unless a user
    switches TF32 on for the whole process (``CUPY_TF32=1``,
    ``torch.backends.cuda.matmul.allow_tf32``), which uscale_ref leaves alone.
    """
    return {"precision": "highest"} if array_api_compat.is_jax_namespace(xp) else {}


def matmul(xp: Namespace, a: Array, b: Array) -> Array:
    """``a @ b`` (batched), in full precision on every library."""
    return xp.matmul(a, b, **_full_precision(xp))


def vecdot(xp: Namespace, a: Array, b: Array) -> Array:
    """``sum_i conj(a[..., i]) b[..., i]``, in full precision on every library."""
    return xp.vecdot(a, b, **_full_precision(xp))


def contract(xp: Namespace, matrices: Array, columns: Array, broadcast: bool) -> Array:
    """``matrices @ columns``: ``sum_q matrices[g, p, q] columns[n, g, q, b]``.

    ``broadcast`` does it as ``Q`` element-wise products (the ``broadcast``
    path, for short contractions), else as one batched matrix product.
    """
    if not broadcast:
        return matmul(xp, matrices, columns)
    total = matrices[None, :, :, 0:1] * columns[:, :, None, 0, :]
    for q in range(1, matrices.shape[-1]):
        total += matrices[None, :, :, q : q + 1] * columns[:, :, None, q, :]
    return total


def stack_taps(xp: Namespace, taps: list[Array]) -> Array:
    """The ``(N, G, Q, B)`` taps as one ``(N, G, Q T, B)`` matrix (``q`` major, tap minor)."""
    batch, groups, inner, width = taps[0].shape
    return xp.reshape(xp.stack(taps, axis=3), (batch, groups, inner * len(taps), width))


def sum_over_taps(
    xp: Namespace,
    matrices: list[Array],
    columns: list[Array],
    stacked: Array | None,
    broadcast: bool,
) -> Array:
    """``sum_t matrices[t] @ columns[t]``, or one product when the matrices come ``stacked``.

    ``stacked`` is ``(G, P, Q T)``, the matrices side by side in the order of
    :func:`stack_taps`; the sum is then a single product with the stacked
    columns (the same terms, fewer and larger products).
    """
    if stacked is not None:
        return matmul(xp, stacked, stack_taps(xp, columns))
    total = contract(xp, matrices[0], columns[0], broadcast)
    for matrix, column in zip(matrices[1:], columns[1:], strict=True):
        total += contract(xp, matrix, column, broadcast)
    return total
