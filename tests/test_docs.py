"""The documentation covers the public API, and the examples on its pages run.

No Sphinx needed: the API grouping (``docs/api_groups.py``) is imported by path and
compared with ``segloss_jax.__all__`` and the registry; every ``{doctest}`` block of
the Markdown pages is run with the standard library's doctest and every ``python``
block as a script, each in a fresh namespace.
"""

from __future__ import annotations

import doctest
import importlib.util
import pathlib
import re
import sys
import types

import pytest

import segloss_jax as sl
from segloss_jax._src.registry import loss_info, loss_name

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


api_groups = _load("api_groups")


def test_every_public_name_is_in_exactly_one_api_group():
    grouped = api_groups.all_grouped()
    missing = sorted(set(sl.__all__) - set(grouped))
    assert not missing, (
        f"public names missing from the API reference: {missing}; add each to one group "
        "of GROUPS in docs/api_groups.py (and describe it on that family's page)")
    twice = sorted({name for name in grouped if grouped.count(name) > 1})
    assert not twice, f"names in more than one group of docs/api_groups.py: {twice}"


def test_api_groups_name_only_public_names():
    stale = [name for name in api_groups.all_grouped() if name not in sl.__all__]
    assert not stale, (
        f"docs/api_groups.py lists names that segloss_jax does not export: {stale}")


def test_registered_losses_are_grouped_by_their_kind():
    keys = {group.key for group in api_groups.GROUPS}
    for name in sl.list_losses():
        info = loss_info(name)
        if info.kind not in keys or info.fn.__name__ not in sl.__all__:
            continue
        group = api_groups.group_of(info.fn.__name__)
        assert group is not None and group.key == info.kind, (
            f"{info.fn.__name__} is registered as kind={info.kind!r} but grouped under "
            f"{group.key if group else None!r} in docs/api_groups.py")
        assert loss_name(info.fn) == name


def test_api_fragment_and_stubs(tmp_path):
    planned = api_groups.write_api(tmp_path, sl)
    fragment = (tmp_path / "_generated" / "fragments" / "api.md").read_text()
    listed = re.findall(r"^   (\w+)$", fragment, flags=re.M)
    assert sorted(listed) == sorted(sl.__all__)
    stubs = {p.name for p in (tmp_path / "api" / "_autosummary").glob("*.rst")}
    assert stubs == {f"segloss_jax.{name}.rst" for name in sl.__all__}
    assert set(planned).isdisjoint(sl.__all__)


def test_every_group_has_a_page_that_shows_it():
    for group in api_groups.GROUPS:
        page = DOCS / f"{group.page}.md"
        assert page.is_file(), f"missing family page {page}"
        text = page.read_text()
        for name in group.names:
            assert name in text, f"{name} is not described on {page.name}"


# Every example on the pages runs as written, on its own: each ```{doctest} block and
# each ```python block in a fresh namespace, so a block that relies on an import or a
# name it does not show fails here as it would for a reader who copies it.
_BLOCK = re.compile(r"^```(\{doctest\}|python)[^\n]*\n(.*?)^```", re.S | re.M)
_PAGES = sorted(p for p in DOCS.rglob("*.md") if "_generated" not in p.parts
                and "_build" not in p.parts)
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _blocks() -> list:
    params = []
    for page in _PAGES:
        text = page.read_text()
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2  # the block's first line of code
            name = f"{page.relative_to(DOCS)}:{line}"
            params.append(pytest.param(page, line, *match.groups(), id=name))
    return params


@pytest.mark.parametrize("page, line, kind, source", _blocks())
def test_page_block_runs_on_its_own(page, line, kind, source, monkeypatch):
    import jax

    pending = sorted(set(re.findall(r"\bsl\.(\w+)", source)) - set(sl.__all__) - {"__version__"})
    if pending:
        pytest.skip(f"uses names not exported yet: {pending}")
    # Keras reads its backend once, at its first import, whichever block that is in.
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    # A module of its own, as a script has (flax.linen looks its classes up there).
    module = types.ModuleType("_docs_block")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    where = f"{page.relative_to(DOCS)}, line {line}"
    # Pages show code for users: the strict rank promotion of the test suite stays on.
    # Each example compiles small programs once; XLA's optimisations would cost more.
    fast = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        if kind == "python":
            exec(compile(source, where, "exec"), module.__dict__)
            return
        test = doctest.DocTestParser().get_doctest(source, module.__dict__, where, str(page),
                                                   line - 1)
        runner = doctest.DocTestRunner(optionflags=_FLAGS)
        runner.run(test)
    finally:
        jax.config.update("jax_disable_most_optimizations", fast)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted > 0
    assert failed == 0, f"{failed} example(s) at {where} failed (see stdout)"


def test_sphinx_adds_no_hidden_imports():
    conf = (DOCS / "conf.py").read_text()
    assert "doctest_global_setup" not in conf, (
        "docs/conf.py must not import names for the examples: each block shows its imports")


def test_included_markdown_is_made_safe_for_the_site(tmp_path):
    fragments = _load("fragments")
    source = tmp_path / "src"
    source.mkdir()
    (source / "plot.png").write_bytes(b"png")
    text = ("# Title\n\nSee [train.py](train.py), [docs](https://x.org) and ![p](plot.png)"
            " and ![gone](missing.png).\n\n```bash\n# a comment, not a heading\n```\n")
    out = fragments.transform(text, source, tmp_path, "slot", demote=2)
    assert out.startswith("### Title")
    assert "`train.py`" in out and "[docs](https://x.org)" in out
    assert "![p](/_generated/included/slot/plot.png)" in out
    assert (tmp_path / "_generated" / "included" / "slot" / "plot.png").is_file()
    assert "missing.png" in out and "![gone]" not in out
    assert "# a comment, not a heading" in out.splitlines()


def test_api_pages_skip_names_not_exported_yet(tmp_path):
    # A family still being written: its names are planned, not broken references.
    import types

    exported = [name for name in sl.__all__ if name != "dice_loss"]
    partial = types.SimpleNamespace(__all__=exported, **{n: getattr(sl, n) for n in exported})
    planned = api_groups.write_api(tmp_path, partial)
    assert planned == ["dice_loss"]
    fragment = (tmp_path / "_generated" / "fragments" / "api.md").read_text()
    assert "   dice_loss\n" not in fragment
    assert not (tmp_path / "api" / "_autosummary" / "segloss_jax.dice_loss.rst").exists()


def test_check_site_takes_the_relative_path_make_passes(tmp_path, monkeypatch, capsys):
    # `make docs-check` runs `docs/check_site.py docs/_build/html`; the pages go to Chromium
    # as file:// URIs, which need an absolute path. A stand-in for Chromium prints a DOM.
    check_site = _load("check_site")
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text('<a href="other.html">x</a>')
    (site / "other.html").write_text("<p>no maths</p>")
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\necho '<html></html>'\n")
    chromium.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert check_site.main(["site", "--chromium", str(chromium)]) == 0
    assert "2 pages, 0 with problems" in capsys.readouterr().out


def test_no_control_characters_in_pages_or_sources():
    r"""A ``\f``, ``\b`` or ``\t`` written into a string that is not raw turns ``\frac``,
    ``\big`` or ``\tau`` into a control character, which MathJax cannot typeset."""
    root = DOCS.parent
    files = [*DOCS.rglob("*.md"), *(root / "segloss_jax").rglob("*.py"), root / "README.md"]
    bad = re.compile(r"[\x00-\x0c\x0e-\x1f]")  # all but \n and \r
    found = [f"{path.relative_to(root)}:{n}" for path in files if "_build" not in path.parts
             for n, line in enumerate(path.read_text().split("\n"), 1) if bad.search(line)]
    assert not found, f"control characters at {found}"
