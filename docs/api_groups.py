"""The API reference grouping: every public name of ``segloss_jax`` in exactly one family.

The families come from ``segloss_jax/_src/families.py``, the package's one
table of families (it also orders ``__all__`` and gives registered losses
their kind); this mapping is the single source of the API pages. ``conf.py`` turns it into
``_generated/fragments/api.md`` (included by ``api/index.md``) and one stub page
per name under ``api/_autosummary/``; ``tests/test_docs.py`` fails when a name of
``segloss_jax.__all__`` is in no group or in two, or when a group names something
that is not public. Names not exported yet (a family still being written) are
skipped by the build, so the site builds at every stage.

The same table gives the README its table of families (``readme_table``; run this
file to rewrite it) and the conventions page its table of keywords by loss
(``write_keyword_table``, read from the signatures), so neither is written by hand.

This module needs neither Sphinx nor JAX (but ``write_*`` take the imported package):
the tests import it by path.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import pathlib
from collections.abc import Iterable


def _load_families():
    """``segloss_jax/_src/families.py``, loaded by path (it imports nothing of the package)."""
    path = pathlib.Path(__file__).resolve().parents[1] / "segloss_jax" / "_src" / "families.py"
    spec = importlib.util.spec_from_file_location("segloss_families", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class Group:
    key: str  # also the registry ``kind`` of the losses in it, where there is one
    title: str
    page: str  # the family page, a docname relative to docs/
    blurb: str
    names: tuple[str, ...]


# One group per family of the package's table, which also orders ``__all__`` and
# gives each registered loss its kind.
GROUPS: tuple[Group, ...] = tuple(
    Group(f.key, f.title, f"families/{f.key}", f.blurb, f.names)
    for f in _load_families().FAMILIES)


def group_of(name: str) -> Group | None:
    for group in GROUPS:
        if name in group.names:
            return group
    return None


def all_grouped() -> list[str]:
    return [name for group in GROUPS for name in group.names]


def present(group: Group, public: Iterable[str]) -> list[str]:
    """The names of ``group`` that are exported now, in the group's order."""
    public = set(public)
    return [name for name in group.names if name in public]


def write_if_changed(path: pathlib.Path, text: str) -> None:
    """Writes only on change, so that Sphinx's incremental builds stay incremental.

    (``fragments.py`` has the same three lines: each module loads on its own in tests.)
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _stub(name: str, obj: object) -> str:
    if inspect.isclass(obj):
        directive = "autoclass"
    elif callable(obj):
        directive = "autofunction"
    else:
        directive = "autodata"
    title = name.replace("_", r"\_")
    text = (
        f"{title}\n{'=' * len(title)}\n\n"
        ".. currentmodule:: segloss_jax\n\n"
        f".. {directive}:: {name}\n"
    )
    if directive == "autoclass":
        text += "   :members:\n"
        fields = getattr(obj, "_fields", ())  # NamedTuple fields: the docstring lists them
        if fields:
            text += f"   :exclude-members: {', '.join(fields)}\n"
    return text


def write_api(docs: pathlib.Path, module) -> list[str]:
    """Writes the API fragment and stubs; returns the grouped names not exported yet."""
    public = list(module.__all__)
    lines = []
    for group in GROUPS:
        names = present(group, public)
        lines += [f"## {group.title}", "", group.blurb, f"See also {{doc}}`/{group.page}`.", ""]
        if not names:
            lines += ["*Nothing exported yet.*", ""]
            continue
        lines += ["```{eval-rst}", ".. currentmodule:: segloss_jax", "", ".. autosummary::",
                  "   :toctree: _autosummary", "   :nosignatures:", ""]
        lines += [f"   {name}" for name in names]
        lines += ["```", ""]
    write_if_changed(docs / "_generated" / "fragments" / "api.md", "\n".join(lines))

    stub_dir = docs / "api" / "_autosummary"
    wanted = {f"segloss_jax.{name}.rst" for name in public}
    for name in public:
        write_if_changed(stub_dir / f"segloss_jax.{name}.rst", _stub(name, getattr(module, name)))
    for old in stub_dir.glob("*.rst"):  # a renamed function leaves no stale page behind
        if old.name not in wanted:
            old.unlink()
    return [name for name in all_grouped() if name not in set(public)]


def write_registry_table(docs: pathlib.Path, module) -> None:
    """The table of registered losses shown on the helpers page, read from the registry."""
    from segloss_jax._src.registry import loss_info

    rows = ["| registry name | function | family | activations (default first) |",
            "|---|---|---|---|"]
    for name in module.list_losses():
        info = loss_info(name)
        fname = info.fn.__name__
        group = group_of(fname)
        family = f"{{doc}}`{group.title} </{group.page}>`" if group else info.kind
        ref = (f"{{func}}`~segloss_jax.{fname}`" if fname in module.__all__ else f"`{fname}`")
        acts = ", ".join(f"`{a!r}`" for a in info.activations)
        rows.append(f"| `\"{name}\"` | {ref} | {family} | {acts} |")
    write_if_changed(docs / "_generated" / "fragments" / "registry.md", "\n".join(rows) + "\n")



# The columns of the keywords table: the keywords that several families share.
SHARED_KEYWORDS = ("activation", "class_weights", "reduction", "smooth", "per_image",
                   "include_background", "classes", "axis_name", "sampling")
_EVERY_LOSS = ("logits", "labels", "where", "ignore_index")


def keyword_table(module) -> str:
    """One row per registered loss, family by family: which shared keywords it takes."""
    from segloss_jax._src.registry import loss_info, loss_name

    rows = ["| loss | " + " | ".join(f"`{k}`" for k in SHARED_KEYWORDS) + " | own options |",
            "|---" * (len(SHARED_KEYWORDS) + 2) + "|"]
    registered = set(module.list_losses())
    for group in GROUPS:
        for name in present(group, module.__all__):
            fn = getattr(module, name)
            key = loss_name(fn) if callable(fn) else None
            if key not in registered:
                continue  # a helper or metric, not a loss
            params = inspect.signature(fn).parameters
            activations = loss_info(key).activations
            cells = []
            for keyword in SHARED_KEYWORDS:
                if keyword not in params:
                    cells.append("—")
                elif keyword == "activation" and len(activations) == 1:
                    cells.append(f"`{activations[0]!r}` only".replace("'", '"'))
                else:
                    cells.append("✓")
            own = [f"`{k}`" + (" (required)" if p.default is p.empty else "")
                   for k, p in params.items() if k not in SHARED_KEYWORDS + _EVERY_LOSS]
            rows.append(f"| `{name}` | " + " | ".join(cells) + f" | {', '.join(own) or '—'} |")
    return "\n".join(rows) + "\n"


def write_keyword_table(docs: pathlib.Path, module) -> None:
    write_if_changed(docs / "_generated" / "fragments" / "keywords.md", keyword_table(module))


# The README's table of families sits between these two lines.
README_BEGIN = "<!-- families: generated by `python docs/api_groups.py`, do not edit -->"
README_END = "<!-- end of families -->"


def readme_table() -> str:
    """The README's table: each family, its page and its public names."""
    rows = ["| family | public names |", "|---|---|"]
    for group in GROUPS:
        names = ", ".join(f"`{name}`" for name in group.names)
        rows.append(f"| [{group.title}](docs/{group.page}.md) | {names} |")
    return "\n".join(rows) + "\n"


def readme_with_table(text: str) -> str:
    """``text`` (the README) with the part between the markers rewritten."""
    head, sep, rest = text.partition(README_BEGIN + "\n")
    _, sep2, tail = rest.partition(README_END)
    if not (sep and sep2):
        raise ValueError(f"README.md lacks the lines {README_BEGIN!r} and {README_END!r}")
    return head + sep + readme_table() + sep2 + tail


if __name__ == "__main__":
    readme = pathlib.Path(__file__).resolve().parents[1] / "README.md"
    write_if_changed(readme, readme_with_table(readme.read_text()))
