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
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "figures/*.py"]

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_typehints = "description"
autodoc_member_order = "bysource"

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"uscale_ref {release}"
