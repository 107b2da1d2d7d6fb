"""The tables of public names in the README and the docs list exactly the family table's names.

``segloss_jax/_src/families.py`` is the one table of families. The README's table of
families is generated from it (``python docs/api_groups.py`` rewrites it), the
conventions page's table of keywords by loss is generated at build time, and the
hand-written "reach for it when" tables of the family pages are checked here against
it, so none of them can drift when a loss is added, renamed or moved.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

import pytest

import segloss_jax as sl
from segloss_jax._src import families

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_CODE = re.compile(r"`(?:sl\.)?([A-Za-z_]\w*)")  # the leading identifier of each `code` span


def _load_api_groups():
    spec = importlib.util.spec_from_file_location("_docs_api_groups", DOCS / "api_groups.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


api_groups = _load_api_groups()


def tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables of ``text``: each a list of rows (header first, no separator)."""
    found, current = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not all(set(cell) <= set("-: ") for cell in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def public_names_in(cell: str) -> list[str]:
    return [name for name in _CODE.findall(cell) if name in sl.__all__]


def registered_losses(family: families.Family) -> set[str]:
    functions = {sl.get_loss(name) for name in sl.list_losses()}
    return {name for name in family.names if getattr(sl, name) in functions}


def test_tables_parser_reads_rows_and_code_spans():
    text = "x\n| loss | when |\n|---|---|\n| `dice_loss`, `sl.combine({...})` | `k` |\n\ny\n"
    (table,) = tables(text)
    assert table == [["loss", "when"], ["`dice_loss`, `sl.combine({...})`", "`k`"]]
    assert public_names_in(table[1][0]) == ["dice_loss", "combine"]
    assert public_names_in(table[1][1]) == []


def test_readme_table_of_families_is_current():
    text = (ROOT / "README.md").read_text()
    assert api_groups.readme_with_table(text) == text, (
        "README.md's table of families differs from segloss_jax/_src/families.py: "
        "run `python docs/api_groups.py` to rewrite it")


def test_readme_table_lists_every_family_with_exactly_its_names():
    text = (ROOT / "README.md").read_text()
    (table,) = [t for t in tables(text) if t[0][0] == "family"]
    rows = {}
    for family_cell, names_cell in table[1:]:
        key = re.search(r"\(docs/families/(\w+)\.md\)", family_cell).group(1)
        assert (DOCS / "families" / f"{key}.md").is_file()
        rows[key] = _CODE.findall(names_cell)
    assert list(rows) == [family.key for family in families.FAMILIES]
    for family in families.FAMILIES:
        assert rows[family.key] == list(family.names), family.key


def _reach_for_tables():
    params = []
    for family in families.FAMILIES:
        page = DOCS / "families" / f"{family.key}.md"
        for index, table in enumerate(tables(page.read_text())):
            if table[0][0] == "loss":
                params.append(pytest.param(family, table, id=f"{family.key}-{index}"))
    return params


@pytest.mark.parametrize("family, table", _reach_for_tables())
def test_family_page_loss_table_lists_exactly_the_family_losses(family, table):
    listed = [name for row in table[1:] for name in public_names_in(row[0])]
    missing = sorted(registered_losses(family) - set(listed))
    extra = sorted(set(listed) - set(family.names))
    assert not missing, f"docs/families/{family.key}.md's loss table lacks {missing}"
    assert not extra, (f"docs/families/{family.key}.md's loss table lists {extra}, which "
                       f"belong to another family")


def test_family_pages_with_a_loss_table_cover_the_families_of_losses():
    covered = {param.values[0].key for param in _reach_for_tables()}
    assert covered >= {"pixelwise", "region", "boundary", "compound"}


def test_keyword_table_has_one_row_per_registered_loss():
    table = tables(api_groups.keyword_table(sl))[0]
    rows = [_CODE.findall(row[0])[0] for row in table[1:]]
    expected = [name for family in families.FAMILIES
                for name in family.names if name in registered_losses(family)]
    assert rows == expected
    assert len(expected) == len(sl.list_losses())
    width = len(table[0])
    assert all(len(row) == width for row in table)


def test_conventions_page_shows_the_generated_keyword_table():
    text = (DOCS / "conventions.md").read_text()
    assert "```{include} _generated/fragments/keywords.md" in text
    hand_written = [t for t in tables(text) if t[0][0] == "loss"]
    assert not hand_written, "docs/conventions.md: the keyword table is generated, not written"


def test_no_page_names_a_function_that_does_not_exist():
    # `sl.name` anywhere, and `name_loss` in a column headed "loss" (other columns may
    # name the peers' losses, as the migration tables do).
    pages = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(
        p for p in DOCS.rglob("*.md") if not {"_build", "_generated"} & set(p.parts))]
    stale = []
    for page in pages:
        text = page.read_text()
        names = set(re.findall(r"\bsl\.(\w+)", text)) - {"__version__"}
        for table in tables(text):
            columns = [i for i, head in enumerate(table[0]) if head == "loss"]
            names |= {name for row in table[1:] for i in columns
                      for name in re.findall(r"`(\w+_loss)\b", row[i])}
        stale += [f"{page.relative_to(ROOT)}: {name}" for name in sorted(names - set(sl.__all__))]
    assert not stale, f"pages name functions that segloss_jax does not export: {stale}"
