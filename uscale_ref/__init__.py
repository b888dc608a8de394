"""uscale_ref: a reference implementation of the unit-scaled 1-D convolution.

It computes exactly what ``unit_scaling.functional.conv1d`` computes, forward
and backward, with every sum written out and every scale explicit, on any
Array API library (NumPy, CuPy, torch, JAX, array-api-strict, ...).

>>> import numpy as np, uscale_ref
>>> x = np.ones((2, 4, 16)); w = np.ones((8, 4, 3))
>>> uscale_ref.conv1d(x, w).shape
(2, 8, 14)
"""

from . import constraints, textbook
from .functional import Conv1dGrads, conv1d, conv1d_backward
from .geometry import Conv1dGeometry, conv1d_geometry
from .primitives import correlate, correlate_input_grad, correlate_weight_grad
from .scales import Conv1dScales, conv1d_scales

__version__ = "0.1.0"

__all__ = [
    "Conv1dGeometry",
    "Conv1dGrads",
    "Conv1dScales",
    "__version__",
    "constraints",
    "conv1d",
    "conv1d_backward",
    "conv1d_geometry",
    "conv1d_scales",
    "correlate",
    "correlate_input_grad",
    "correlate_weight_grad",
    "textbook",
]
