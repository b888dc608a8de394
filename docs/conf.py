"""Sphinx configuration: Markdown pages (MyST) with math, API pages from numpydoc docstrings."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uscale_ref

project = "uscale_ref"
author = "uscale_ref developers"
copyright = "2026, uscale_ref developers"
release = uscale_ref.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    # MathJax 3 served from the built site itself: formulas render offline.
    "sphinx-mathjax-offline",
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "figures/*.py"]

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_typehints = "description"
# Keep the alias names in signatures: "Array" (any Array API array) rather than "Any".
autodoc_type_aliases = {
    "Array": "Array",
    "Namespace": "Namespace",
    "npt.NDArray": "numpy.typing.NDArray",
    "npt.ArrayLike": "numpy.typing.ArrayLike",
}
autodoc_member_order = "bysource"

html_theme = "furo"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_title = f"uscale_ref {release}"
