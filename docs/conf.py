"""Sphinx configuration for the segloss_jax documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (``make docs``).
Everything generated (API stubs, included fragments, figures) is written at build
time under ``docs/_generated/`` and ``docs/api/_autosummary/``, both git-ignored;
the build needs no network.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))

# The figures are tiny: run them on the CPU even where an accelerator is present.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import api_groups  # noqa: E402  (docs-local helpers)
import fragments  # noqa: E402

import segloss_jax  # noqa: E402

project = "segloss_jax"
author = "The segloss_jax authors"
copyright = "2025, The segloss_jax authors"  # noqa: A001
release = version = segloss_jax.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# Fragments are included into pages, never built on their own.
exclude_patterns = ["_build", "_generated/fragments", "Thumbs.db", ".DS_Store"]

# MyST: $…$ / $$…$$ maths, ::: fences, definition lists, heading anchors for links.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# API stubs are written by api_groups.write_api, one per public name; autosummary only
# draws the tables.
autosummary_generate = False
autodoc_default_options = {"members": False}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# Broken internal references are errors (with -W); external types in signatures are
# not resolvable without intersphinx, which stays off to keep the build offline.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jnp|chex|np|numpy|optax|flax|typing|collections)(\..*)?"),
    (r"py:.*", r"(Array|ArrayLike|Numeric|Callable|Sequence|Mapping|Iterable|PRNGKey)"),
    (r"py:.*", r"(int|float|bool|str|None|tuple|dict|list|object|NoneType)"),
]

# `sphinx-build -b doctest docs docs/_build/doctest` runs the page and docstring examples
# (pytest runs the same ones in `make test`, each page block in a fresh namespace). No
# global setup: every example shows its own imports.
doctest_default_flags = (
    doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE | doctest.IGNORE_EXCEPTION_DETAIL
    | doctest.DONT_ACCEPT_TRUE_FOR_1
)

html_theme = "sphinx_book_theme"
html_title = "segloss_jax"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "home_page_in_toc": True,
    # The page that is one wide table gives it the width of the contents column.
    "secondary_sidebar_items": {"**": ["page-toc"], "choosing": []},
}
# MathJax ships with the site, so pages render their maths offline (a local HTML
# build, an air-gapped cluster): the single-file TeX-to-SVG bundle of MathJax 3 from
# the sphinx-mathjax-offline package (SVG output needs no web fonts).
_mathjax = (pathlib.Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent
            / "static" / "mathjax" / "tex-svg-full.js")
html_static_path: list[str] = ["_static", str(_mathjax)]
mathjax_path = _mathjax.name
html_css_files = ["custom.css"]
html_last_updated_fmt = None

# The API pages list exactly the public names (segloss_jax.__all__); a grouped name
# that is not exported is an error, not a silently missing entry.
_not_exported = api_groups.write_api(DOCS, segloss_jax)
if _not_exported:
    raise RuntimeError(f"docs/api_groups.py lists names that segloss_jax does not export: "
                       f"{_not_exported}")
api_groups.write_registry_table(DOCS, segloss_jax)
api_groups.write_keyword_table(DOCS, segloss_jax)
fragments.write_all(DOCS, ROOT)


def _resolve_reference(app, env, node, contnode):
    """Private paths of public names point at the public page.

    Docstrings may write ``:func:`~segloss_jax._src.distance.distance_transform_edt```;
    the API documents it as ``segloss_jax.distance_transform_edt``. Any other
    unresolved reference still fails the build.
    """
    if node.get("refdomain") != "py":
        return None
    name = node.get("reftarget", "").split(".")[-1]
    if name in segloss_jax.__all__ and node["reftarget"] != f"segloss_jax.{name}":
        domain = env.get_domain("py")
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                   f"segloss_jax.{name}", node, contnode)
    return None


def _make_figures(app) -> None:
    import plots  # imported here: JAX and matplotlib are only needed for HTML builds

    plots.generate(DOCS / "_generated", logger=_logger())


def _logger():
    from sphinx.util import logging

    return logging.getLogger("segloss_jax.docs")


def setup(app):
    app.connect("builder-inited", _make_figures)
    app.connect("missing-reference", _resolve_reference)
    return {"parallel_read_safe": True}
