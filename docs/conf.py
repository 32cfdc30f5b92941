"""Sphinx configuration: the user guide (the Markdown pages, through MyST), the API reference
(autosummary + numpydoc, validated) and the example gallery (sphinx-gallery, executed).

Build: pip install ".[docs]" && sphinx-build -W -b html docs docs/_build/html
"""

import os
import sys
from pathlib import Path

import skgradunc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

project = "skgradunc"
author = "skgradunc developers"
copyright = "2026, skgradunc developers"
version = release = skgradunc.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "results/*/runs"]
templates_path = ["_templates"]

# MyST: the Markdown pages keep their GitHub form; "#inputs"-style links need heading anchors
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# API reference: one page per public name, numpydoc sections rendered and validated
autosummary_generate = True
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# every check but these (layout details, See Also, extended summaries; Examples are required
# of every public name by tests/test_docs.py, not of every method)
numpydoc_validation_checks = {"all", "GL01", "SA01", "EX01", "ES01", "SS05", "RT02", "PR09",
                              "RT05", "SS03", "SS06", "GL02", "GL03"}
# a class's parameters are documented in the class docstring, as scikit-learn's; SCORERS is a
# dict (its description is the #: comment above it), with no numpydoc sections to validate
numpydoc_validation_exclude = {r"\.__init__$", r"^skgradunc\.metrics\.SCORERS$"}


def _own_member(obj):
    """Whether skgradunc defines ``obj`` (a method, property or attribute of a class)."""
    target = getattr(obj, "fget", obj)      # a property's getter
    return (getattr(target, "__module__", None) or "").startswith("skgradunc")


def _skip_foreign_members(app, what, name, obj, skip, options):
    """A class page documents what skgradunc defines: not the methods scikit-learn adds
    (``set_fit_request``...) or a parent's (skorch, torch) that a class inherits."""
    if what == "class" and not _own_member(obj):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)

# Gallery: every script in examples/ is run at build time (they use the embedded digits:
# seconds each on 2 CPU cores); its figures become the page's images.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r".*\.py$",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
}

html_theme = "pydata_sphinx_theme"
html_title = f"skgradunc {version}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}
html_show_sourcelink = False
