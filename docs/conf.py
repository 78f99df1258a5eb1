"""Sphinx configuration of the sclatent documentation (``python -m sphinx -W -b html docs docs/_build``)."""

from importlib.metadata import version as _version

project = "sclatent"
author = "the sclatent developers"
copyright = "2026, the sclatent developers"
release = _version("sclatent")

extensions = [
    "myst_nb",  # Markdown pages and the tutorials (docs/tutorials links to tutorials/)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
# the tutorials are stored without outputs and executed by tests/test_tutorials.py, not by the build
nb_execution_mode = "off"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
templates_path = ["_templates"]

html_theme = "alabaster"
html_title = "sclatent"
