"""Which path a kernel takes, with which block sizes, and why: every threshold in one place.

A :class:`Plan` is chosen from the geometry, the element size and the
workspace bound (:mod:`uscale_ref.config`) by :func:`make_plan`. The kernels
read nothing else, so a test can hand them any plan that is valid for a
geometry and so run every path on every case.

The paths, all computing the same sums (see :mod:`uscale_ref.textbook`):

``broadcast``
    element-wise products summed over a short contraction (fewer than
    ``SMALL_CONTRACTION`` channels): tiny matrix products cost more in call
    overhead than they compute.
``per_tap``
    one batched matrix product per kernel tap over the channels of a group;
    unit-stride taps are views of the input, so nothing is copied.
``folded``
    forward at stride 1 and dgrad: the per-tap products with the batch items
    laid end to end (:mod:`uscale_ref.kernels.folded`), one wide product per
    tap instead of one per item; the input is copied in and the result out.
    Chosen at unit stride (forward) or for dgrad when the batch has
    ``FOLD_MIN_BATCH`` items, the call ``FOLD_MIN_MACS`` multiply-adds and
    each product at least two taps on average (the two copies must pay for
    themselves).
``stacked``
    the taps stacked into one matrix ("im2col") and one product per block. A
    strided view is copied for a product anyway, so strided taps are always
    stacked; unit-stride taps only when channels times taps reaches
    ``WIDE_CONTRACTION`` (forward and dgrad: at ``C K`` = 1152 and 3968 that
    took 0.92-0.99 times as long as per-tap products on a quiet host; wgrad
    stacked measured 1.6-1.9x slower, so it stacks strided taps only). Where
    folding pays, unit-stride taps fold instead: at ``C K`` = 1088 to 3968
    the folded forward and dgrad took 0.81-1.00x of the stacked time, the
    K = 31 forward alone 1.02-1.09x.
``banded``
    depthwise layers at stride 1 with ``K >= BAND_MIN_KERNEL``: band-matrix
    products per tile (:mod:`uscale_ref.kernels.banded`) for the blocks
    whose data is finite (the others sum element-wise).

On a GPU (``accelerator``) the rules above were made for a CPU's caches and
call costs, and three of them hurt; measured with ``benchmarks/paths.py`` on
an H200 through CuPy: blocks cut to ``CACHE_BLOCK_BYTES`` multiply the kernel
launches (the depthwise wgrad took 23.6 ms in blocks, 1.9 ms whole), band
matrices lose to whole element-wise passes (0.86 against 0.48 ms forward),
and wgrad's stacked taps, which keep its sums as long as they were (the
stacking is along the result, not the contraction), were the fastest wgrad on every
benchmark shape (0.17-1.23 ms against 0.44-3.11 per tap). So on a GPU blocks
are as long as the workspace allows, ``banded`` is not chosen and wgrad is
stacked; the forward and dgrad keep the CPU's paths, whose shorter sums
round better than stacked ones.

The memory model: each path keeps, per batch item and per position of a
block, the few arrays listed in :func:`bytes_per_position`. Blocks are as
long as the workspace allows; the cache-blocked paths (``broadcast``,
``banded`` and unit-stride ``stacked``) cut the batch first, so that one
chunk's whole length fits ``CACHE_BLOCK_BYTES``; the element-wise and
stacked ones, which make ``K`` passes over a block, also keep their blocks
to that size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..geometry import Conv1dGeometry

__all__ = [
    "BAND_MAX_SPAN",
    "BAND_MIN_KERNEL",
    "CACHE_BLOCK_BYTES",
    "FOLD_MIN_BATCH",
    "FOLD_MIN_MACS",
    "MIN_COLUMN_WIDTH",
    "PATHS",
    "SMALL_CONTRACTION",
    "WIDE_CONTRACTION",
    "Plan",
    "bytes_per_position",
    "dgrad_phases",
    "make_plan",
    "tile_length",
    "valid_paths",
]

Op = Literal["forward", "input_grad", "weight_grad"]
Path = Literal["broadcast", "per_tap", "folded", "stacked", "banded"]
PATHS: tuple[Path, ...] = ("broadcast", "per_tap", "folded", "stacked", "banded")

# Blocks of the cache-blocked paths stay about this small so that the K
# passes over a block hit the cache instead of main memory.
CACHE_BLOCK_BYTES = 4 * 2**20
# Contractions over fewer channels than this are done as broadcast products.
SMALL_CONTRACTION = 4
# Unit-stride taps are stacked when channels times taps reaches this.
WIDE_CONTRACTION = 1024
# Stacked blocks are cut to the cache but kept at least this wide: narrower
# products lose more in BLAS speed than the cache saves.
MIN_COLUMN_WIDTH = 512
# Folding the batch into the columns pays from this many items and this much
# work: on (8, 64, 1024, 64, 5) it took the forward and dgrad to 0.9x,
# on (32, 64, 64, 64, 3) 0.63x and 0.82x; with two items it was even, and
# calls under about 4M multiply-adds were up to 1.3x slower (the copies).
FOLD_MIN_BATCH = 4
FOLD_MIN_MACS = 2**22
# Band matrices pay off from K = 5: on the benchmark's depthwise shape (K = 7)
# a pass took 6.6 ms against 13.6 ms as element-wise passes; with K = 3 the
# passes were faster (docs/performance.md).
BAND_MIN_KERNEL = 5
# A band matrix is (T + D) x T per channel with T >= D: a long span (large
# dilation) would make it, and the zeros it multiplies, grow without bound.
BAND_MAX_SPAN = 64


def tile_length(span: int) -> int:
    """Outputs per band-matrix tile: 16, or the next power of two at least ``span``.

    A tile of ``T`` outputs reads ``T + span`` inputs, so ``T >= span``
    keeps the band's wasted products (zeros) to at most twice the tile.
    """
    tile = 16
    while tile < span:
        tile *= 2
    return tile


@dataclass(frozen=True)
class Plan:
    """How one kernel call runs.

    Attributes
    ----------
    op : ``"forward"``, ``"input_grad"`` or ``"weight_grad"``
    path : one of :data:`PATHS`
    batch_chunk : int
        Batch items per chunk (the whole batch unless the path is cache-blocked).
    block_length : int
        Positions per block along the length: output positions for the
        forward and wgrad, input positions of one phase for dgrad.
    cache_blocked : bool
        Whether blocks are kept to the cache, the batch cut first.
    exact_edges : bool
        dgrad only: add each tap tap-by-tap over the gradient it really
        has in the edge blocks, without first checking whether the weight
        is finite (set for traced code, which cannot look at values).
    """

    op: Op
    path: Path
    batch_chunk: int
    block_length: int
    cache_blocked: bool
    exact_edges: bool = False


def _contraction(op: Op, geometry: Conv1dGeometry) -> int:
    """Channels summed in one product: C_g (forward), O_g (dgrad), O_g C_g (wgrad)."""
    out_per_group = geometry.out_channels // geometry.groups
    if op == "forward":
        return geometry.fan_in
    if op == "input_grad":
        return out_per_group
    return out_per_group * geometry.fan_in


def banded_applies(geometry: Conv1dGeometry) -> bool:
    """Depthwise, stride 1 and a span the band matrices can hold."""
    span = geometry.dilation * (geometry.kernel_size - 1)
    return (
        geometry.groups == geometry.in_channels == geometry.out_channels
        and geometry.stride == 1
        and span <= BAND_MAX_SPAN
    )


def valid_paths(op: Op, geometry: Conv1dGeometry) -> tuple[Path, ...]:
    """The paths that can compute ``op`` for ``geometry``.

    ``banded``: depthwise ones, not wgrad; ``folded``: forward at stride 1
    and dgrad.
    """
    allowed = {
        "banded": op != "weight_grad" and banded_applies(geometry),
        "folded": op == "input_grad" or (op == "forward" and geometry.stride == 1),
    }
    return tuple(p for p in PATHS if allowed.get(p, True))


def _automatic_path(op: Op, geometry: Conv1dGeometry, eager: bool, accelerator: bool) -> Path:
    contraction = _contraction(op, geometry)
    stride, kernel_size = geometry.stride, geometry.kernel_size
    if (
        eager
        and not accelerator
        and op != "weight_grad"
        and banded_applies(geometry)
        and kernel_size >= BAND_MIN_KERNEL
    ):
        return "banded"
    if accelerator and op == "weight_grad":
        return "stacked"
    if contraction < SMALL_CONTRACTION:
        return "broadcast"
    if op == "weight_grad":
        return "stacked" if stride > 1 else "per_tap"
    if op == "forward" and stride > 1:
        return "stacked"
    if _folding_pays(op, geometry):  # before stacking: it beat that too (see the docstring)
        return "folded"
    if stride == 1 and contraction * kernel_size >= WIDE_CONTRACTION:
        return "stacked"
    return "per_tap"


def _folding_pays(op: Op, geometry: Conv1dGeometry) -> bool:
    """Enough items and work, and taps per product, for ``folded`` to beat ``per_tap``."""
    kernel_size = geometry.kernel_size
    macs = (
        geometry.batch_size
        * geometry.out_length
        * geometry.out_channels
        * geometry.fan_in
        * kernel_size
    )
    if geometry.batch_size < FOLD_MIN_BATCH or macs < FOLD_MIN_MACS:
        return False
    # dgrad runs one product per phase that has taps; the forward one.
    phases = 1 if op == "forward" else len(dgrad_phases(geometry))
    return kernel_size >= 2 * phases


def dgrad_phases(geometry: Conv1dGeometry) -> dict[int, list[tuple[int, int]]]:
    """``r -> [(k, q), ...]``: the taps of each dgrad phase that has any, ``k d = s q + r``.

    At most ``K`` entries, however large the stride.
    """
    phases: dict[int, list[tuple[int, int]]] = {}
    for k in range(geometry.kernel_size):
        q, r = divmod(k * geometry.dilation, geometry.stride)
        phases.setdefault(r, []).append((k, q))
    return phases


def bytes_per_position(op: Op, path: Path, geometry: Conv1dGeometry, itemsize: int) -> int:
    """Working bytes per batch item and block position: the one memory model.

    forward
        the input window (``C s`` per output position), ``K`` stacked
        copies of it when stacked, the block and its scaled copy (``2 O``),
        and when folded the products before they are unfolded (``O``).
    input_grad
        per input position: the gradient window and result (``2 C``, ``2 O``)
        and ``K`` stacked gradient copies when stacked, or when folded the
        products before they are unfolded (``C``).
    weight_grad
        the input window and its conjugate (``2 C s``), the stacked copies
        (``K C``) or one tap's (``C``), one more input-sized temporary and
        the gradient block (``O``).
    """
    channels_in, channels_out = geometry.in_channels, geometry.out_channels
    stride, kernel_size = geometry.stride, geometry.kernel_size
    stacked, folded = path == "stacked", path == "folded"
    if op == "forward":
        columns = kernel_size if stacked else 1
        count = channels_in * (stride + columns) + (3 if folded else 2) * channels_out
    elif op == "input_grad":
        count = (3 if folded else 2) * channels_in
        count += (2 + (kernel_size if stacked else 0)) * channels_out
    else:
        columns = kernel_size if stacked else 1
        count = channels_in * (2 * stride + columns + 1) + channels_out
    return itemsize * count


def make_plan(
    op: Op,
    geometry: Conv1dGeometry,
    itemsize: int,
    workspace_bytes: int,
    *,
    path: Path | None = None,
    eager: bool = True,
    accelerator: bool = False,
) -> Plan:
    """Choose the path and the batch and block sizes for one kernel call.

    Parameters
    ----------
    op : ``"forward"``, ``"input_grad"`` or ``"weight_grad"``
    geometry : Conv1dGeometry
    itemsize : int
        Bytes per element of the working dtype.
    workspace_bytes : int
        The bound on temporary memory (:func:`uscale_ref.config.get_workspace_bytes`).
    path : str, optional
        Force a path (tests run every path on every case this way); it must
        be one of :func:`valid_paths`.
    eager : bool
        Whether the array library can look at data values before it computes
        (False for traced JAX code): the banded path checks its data is
        finite, so it is only chosen automatically when ``eager``, and dgrad
        checks its weight is finite, so without ``eager`` it takes exact
        edges.
    accelerator : bool
        Whether the arrays live on a GPU. There no block is cut to a cache
        (the blocks are as long as the workspace allows), the band matrices
        are not chosen, and wgrad stacks its taps (see the module docstring).

    Examples
    --------
    >>> from uscale_ref.geometry import conv1d_geometry
    >>> g = conv1d_geometry((8, 128, 1024), (128, 128, 9), padding=4)
    >>> make_plan("forward", g, 4, 64 * 2**20)  # doctest: +NORMALIZE_WHITESPACE
    Plan(op='forward', path='folded', batch_chunk=8, block_length=1024,
         cache_blocked=False, exact_edges=False)
    >>> one = conv1d_geometry((1, 128, 1024), (128, 128, 9), padding=4)
    >>> make_plan("forward", one, 4, 64 * 2**20)  # doctest: +NORMALIZE_WHITESPACE
    Plan(op='forward', path='stacked', batch_chunk=1, block_length=682,
         cache_blocked=True, exact_edges=False)
    """
    if path is None:
        path = _automatic_path(op, geometry, eager, accelerator)
    elif path not in valid_paths(op, geometry):
        raise ValueError(
            f"path {path!r} cannot compute {op} for this geometry; "
            f"valid: {valid_paths(op, geometry)}"
        )
    cache_blocked = not accelerator and (
        path in ("broadcast", "banded")
        or (path == "stacked" and op != "weight_grad" and geometry.stride == 1)
    )
    per_position = bytes_per_position(op, path, geometry, itemsize)
    total = geometry.in_length if op == "input_grad" else geometry.out_length
    batch = geometry.batch_size
    if cache_blocked and batch > 1:
        cache_budget = min(workspace_bytes, CACHE_BLOCK_BYTES)
        batch = max(1, min(batch, cache_budget // max(1, per_position * total)))
    per_block_position = per_position * batch
    length = max(1, min(total, workspace_bytes // per_block_position))
    if cache_blocked and path != "banded":  # bands read each block once: no need
        cached = max(1, min(total, CACHE_BLOCK_BYTES // per_block_position))
        if path == "stacked":
            cached = max(cached, min(total, MIN_COLUMN_WIDTH))
        length = min(length, cached)
    if path == "banded" and length < total:  # blocks of whole tiles
        tile = tile_length(geometry.dilation * (geometry.kernel_size - 1))
        length = max(tile, length // tile * tile)
    return Plan(op, path, batch, length, cache_blocked, exact_edges=not eager)
