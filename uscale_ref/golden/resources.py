"""What a case costs in memory and disk, held against what the machine has.

Every estimate here is an upper bound of what was measured (the sizes in
docs/golden-format.md), so a refusal comes before any large allocation and
a case that is accepted fits.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..exact.points import BLOCK_ELEMENTS, GRID_LENGTH, WHOLE_ELEMENTS
from .positions import grid_size
from .suite import CaseSpec

__all__ = ["check_memory", "check_resources", "memory_available", "needs", "to_run"]

GIB = 2**30


def _itemsize(spec: CaseSpec) -> int:
    return {"float16": 2, "float32": 4, "bfloat16": 4, "float64": 8, "complex64": 8,
            "complex32": 8, "complex128": 16}[spec.dtype]  # fmt: skip


#: float64 slices (over both parts, for complex) the exact products cut each operand into,
#: at most: the factor of every gathered operand's memory.
_SLICES = {"float16": 2, "float32": 3, "bfloat16": 3, "float64": 4, "complex32": 4,
           "complex64": 6, "complex128": 8}  # fmt: skip
#: The interpreter, NumPy and what building holds besides the terms below.
_BASE = 512 * 2**20


def needs(spec: CaseSpec) -> tuple[int, int]:
    """At most how much memory building ``spec`` takes, and the size of its file, in bytes.

    A whole fixture holds every input and result and a float64 error scale per
    result element; building it takes up to about four times that (the inputs'
    float64 copies and magnitudes, the float64 sums, the file's bytes), plus
    256 MiB for the interpreter and NumPy.

    A compact one holds its positions; building it takes, besides a base of
    512 MiB: the inputs it draws and cuts whole (up to
    :data:`~uscale_ref.exact.points.WHOLE_ELEMENTS` elements, about 60 bytes
    each); the weight, held whole with its float64 parts, one and a half
    times over; grad_weight's grid, whose rows of grad_output and columns
    of the input are taken a block of positions at a time, cut into the
    dtype's slices and stacked; and two blocks of gathered operands
    (:data:`~uscale_ref.exact.points.BLOCK_ELEMENTS` per slice).
    ``benchmarks/memory_estimate.py`` holds this against the measured peak.
    """
    geometry = spec.geometry
    batch = spec.batch_size or 1
    inputs = {
        "input": batch * spec.in_channels * spec.length,
        "weight": math.prod(spec.weight_shape),
        "bias": spec.out_channels if spec.bias else 0,
        "grad_output": batch * spec.out_channels * geometry.out_length,
    }
    results = {
        "output": inputs["grad_output"],
        "grad_input": inputs["input"],
        "grad_weight": inputs["weight"],
        "grad_bias": inputs["bias"],
    }
    item = _itemsize(spec)
    if spec.compact is None:
        size = item * (sum(inputs.values()) + sum(results.values())) + 8 * sum(results.values())
        return 4 * size + 256 * 2**20, size + 2**16
    kept = sum(min(spec.compact, n) for n in results.values())
    size = kept * (item + 16) + 2**16
    drawn = sum(min(inputs[name], WHOLE_ELEMENTS) for name in ("input", "grad_output"))
    parts = 2 if spec.dtype.startswith("complex") else 1
    slices = _SLICES[spec.dtype]
    weight = inputs["weight"] * (item + 8 * parts) * 3 // 2
    rows, columns = grid_size(spec, spec.compact)
    # grad_weight's grid runs over blocks of up to 4096 positions of one batch item; each
    # block's operands are held cut and stacked (measured: up to about six copies).
    grid = 6 * (rows + columns) * min(geometry.out_length, GRID_LENGTH) * 8 * slices
    blocks = 2 * BLOCK_ELEMENTS * 8 * slices
    return _BASE + 60 * drawn + weight + grid + blocks, size


def to_run(spec: CaseSpec) -> int:
    """About how much memory running a kernel on ``spec`` and judging it takes, in bytes.

    The whole inputs (drawn once, then copied for each call and converted)
    three times over, the results (the kernel's, converted, and a float64
    difference) three times over; for a compact fixture as for a full one,
    since the kernel computes the whole layer.
    """
    geometry = spec.geometry
    inputs = (math.prod(spec.input_shape) + math.prod(spec.weight_shape)
              + math.prod(geometry.output_shape) + spec.out_channels)  # fmt: skip
    results = inputs  # output ~ grad_output, grad_input ~ input, grad_weight, grad_bias
    return 3 * inputs * _itemsize(spec) + results * (2 * _itemsize(spec) + 16) + 64 * 2**20


def check_memory(spec: CaseSpec, what: str, needed: int) -> None:
    """Refuse ``what`` for case ``spec`` when it needs more memory than is available.

    Raises
    ------
    ValueError
        Naming the case, what it needs and what the machine has: a setup's
        limit, raised before anything is allocated.
    """
    memory = memory_available()
    if memory is not None and needed > memory:
        raise ValueError(
            f"case {spec.id}: {what} needs about {format_bytes(needed)} of memory; this machine "
            f"has {format_bytes(memory)} available"
        )


def memory_available() -> int | None:
    """Memory the system can give now (``MemAvailable``), or None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


def check_resources(specs: Sequence[CaseSpec], out: Path, jobs: int) -> None:
    """Refuse, before any work, cases this machine cannot build or store.

    Raises
    ------
    ValueError
        Naming the case, what it needs and what the machine has, and
        pointing to compact fixtures when the case is a whole one.
    """
    memory = memory_available()
    where = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    disk = shutil.disk_usage(where).free
    estimates = [(spec, *needs(spec)) for spec in specs]
    if memory is not None:
        for spec, peak, _ in estimates:
            if peak > memory:
                hint = (" (try --compact 20000, or compact=20000: inputs drawn from their "
                        "seeds, expected values at 20,000 positions per array)"
                        if spec.compact is None else "")  # fmt: skip
                raise ValueError(
                    f"case {spec.id} needs about {format_bytes(peak)} of memory to build and "
                    f"{format_bytes(needs(spec)[1])} of disk; this machine has "
                    f"{format_bytes(memory)} of memory available{hint}"
                )
        largest = sorted((peak for _, peak, _ in estimates), reverse=True)[:jobs]
        if jobs > 1 and sum(largest) > memory:
            raise ValueError(
                f"{jobs} jobs at once need about {format_bytes(sum(largest))} of memory, "
                f"this machine has {format_bytes(memory)} available: use fewer --jobs"
            )
    total = sum(size for _, _, size in estimates)
    if total > disk:
        raise ValueError(
            f"the cases take about {format_bytes(total)} of disk; {where} has "
            f"{format_bytes(disk)} free"
        )


def format_bytes(size: float) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 2**20), ("kiB", 2**10)):
        if size >= scale:
            amount = size / scale
            return f"{amount:,.0f} {unit}" if amount >= 100 else f"{amount:.3g} {unit}"
    return f"{int(size)} B"
