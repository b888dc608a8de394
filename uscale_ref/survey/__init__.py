"""Frameworks' conv1d judged by uscale_ref: adapters and a survey.

:mod:`.adapters` turns PyTorch, JAX, TensorFlow, onnxruntime and tinygrad into kernels
under test (each framework's own convolution and autograd, uscale_ref's scales applied);
:func:`survey` runs every installed one over a plan of cases and gathers one table
(``uscale-ref survey``). No framework is needed by uscale_ref itself.
"""

from __future__ import annotations

from .adapters import ADAPTERS, Adapter, adapter, missing
from .picture import draw
from .run import PLANS, production_specs, survey
from .table import Row, Survey

__all__ = ["ADAPTERS", "PLANS", "Adapter", "Row", "Survey", "adapter", "draw", "missing",
           "production_specs", "survey"]  # fmt: skip
