"""Included Markdown written at build time from files other people own.

``benchmarks/RESULTS.md``, ``examples/unet/README.md`` and the U-Net demo results
(``examples/unet/RESULTS.md`` if committed, else ``demo_out/RESULTS.md`` from
``make demo``) are pulled into the site when they exist (a placeholder when they do
not). Their headings are demoted below the including page's, links to repository
files become plain code (they are not pages of the site) and images they reference
are copied under ``_generated/included/``.
"""

from __future__ import annotations

import pathlib
import re
import shutil

_FENCE = re.compile(r"^\s*(```|~~~)")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
_EXTERNAL = ("http://", "https://", "mailto:", "#")


def write_if_changed(path: pathlib.Path, text: str) -> None:
    """Writes only on change, so that Sphinx's incremental builds stay incremental."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _is_external(target: str) -> bool:
    return target.startswith(_EXTERNAL)


def transform(text: str, source_dir: pathlib.Path, docs: pathlib.Path, slot: str,
              demote: int = 1, drop_title: bool = False) -> str:
    """Demotes headings by ``demote`` levels, neutralises repository links, copies images.

    ``drop_title`` removes the file's own title (a leading ``# ...`` line) where the
    including page's title already names it.
    """
    if drop_title and text.startswith("# "):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    out, in_fence = [], False
    image_dir = docs / "_generated" / "included" / slot

    def image(match: re.Match) -> str:
        alt, target = match.groups()
        if _is_external(target):
            return match.group(0)
        src = (source_dir / target).resolve()
        if not src.is_file():
            return f"*(image `{target}` not available at build time)*"
        image_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, image_dir / src.name)
        return f"![{alt}](/_generated/included/{slot}/{src.name})"

    def link(match: re.Match) -> str:
        label, target = match.groups()
        if _is_external(target):
            return match.group(0)
        return label if label.startswith("`") else f"`{label}`"

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            if line.startswith("#"):
                line = "#" * demote + line
            line = _LINK.sub(link, _IMAGE.sub(image, line))
        out.append(line)
    return "\n".join(out) + "\n"


def _include(docs: pathlib.Path, source: pathlib.Path, slot: str, placeholder: str,
             demote: int = 1, drop_title: bool = False) -> None:
    target = docs / "_generated" / "fragments" / f"{slot}.md"
    if source.is_file():
        text = transform(source.read_text(), source.parent, docs, slot, demote, drop_title)
        note = f"*Included from `{source.relative_to(docs.parent)}` at build time.*\n\n"
        write_if_changed(target, note + text)
    else:
        write_if_changed(target, placeholder)


def write_all(docs: pathlib.Path, root: pathlib.Path) -> None:
    _include(
        docs, root / "benchmarks" / "RESULTS.md", "benchmarks",
        "```{note}\n`benchmarks/RESULTS.md` was not there when this site was built; "
        "run `make bench` to produce it.\n```\n",
        demote=0, drop_title=True,
    )
    _include(
        docs, root / "examples" / "unet" / "README.md", "unet",
        "```{note}\n`examples/unet/README.md` was not there when this site was built.\n```\n",
    )
    # Demo results: a committed copy if there is one, else the output of `make demo`.
    committed = root / "examples" / "unet" / "RESULTS.md"
    _include(
        docs, committed if committed.is_file() else root / "demo_out" / "RESULTS.md",
        "unet_results",
        "```{note}\nNo demo results were there when this site was built: run `make demo` "
        "(it writes `demo_out/RESULTS.md`), then build the site again.\n```\n",
        demote=2,
    )
