"""The API reference grouping: every public name of ``segloss_jax`` in exactly one family.

This mapping is the single source of the API pages. ``conf.py`` turns it into
``_generated/fragments/api.md`` (included by ``api/index.md``) and one stub page
per name under ``api/_autosummary/``; ``tests/test_docs.py`` fails when a name of
``segloss_jax.__all__`` is in no group or in two, or when a group names something
that is not public. Names not exported yet (a family still being written) are
skipped by the build, so the site builds at every stage.

This module needs neither Sphinx nor JAX: the test imports it by path.
"""

from __future__ import annotations

import dataclasses
import inspect
import pathlib
from collections.abc import Iterable


@dataclasses.dataclass(frozen=True)
class Group:
    key: str  # also the registry ``kind`` of the losses in it, where there is one
    title: str
    page: str  # the family page, a docname relative to docs/
    blurb: str
    names: tuple[str, ...]


GROUPS: tuple[Group, ...] = (
    Group(
        "pixelwise",
        "Pixel-wise losses",
        "families/pixelwise",
        "Cross-entropy and its weighted, balanced and focal forms: a sum of per-pixel terms.",
        (
            "cross_entropy",
            "binary_cross_entropy",
            "weighted_cross_entropy",
            "balanced_cross_entropy",
            "focal_loss",
            "distance_weighted_cross_entropy",
        ),
    ),
    Group(
        "region",
        "Region losses",
        "families/region",
        "Scores of soft confusion statistics (tp, fp, fn) per class or per (image, class).",
        (
            "dice_loss",
            "jaccard_loss",
            "tversky_loss",
            "focal_tversky_loss",
            "log_cosh_dice_loss",
            "sensitivity_specificity_loss",
            "generalized_dice_loss",
            "dice_semimetric_loss",
            "jaccard_metric_loss",
        ),
    ),
    Group(
        "lovasz",
        "Lovász losses",
        "families/lovasz",
        "Convex surrogates of the Jaccard index (Berman et al.).",
        ("lovasz_hinge_loss", "lovasz_softmax_loss"),
    ),
    Group(
        "distance",
        "Distance transforms",
        "families/distance",
        "Exact Euclidean distance transforms, jit-able, no host callback.",
        ("distance_transform_edt", "signed_distance"),
    ),
    Group(
        "boundary",
        "Boundary losses",
        "families/boundary",
        "Losses weighted by distances to the target or predicted boundary.",
        ("boundary_loss", "hausdorff_dt_loss", "shape_aware_loss"),
    ),
    Group(
        "compound",
        "Compound losses",
        "families/compound",
        "Fixed combinations of a region term and a pixel-wise term.",
        ("dice_ce_loss", "dice_focal_loss", "combo_loss", "exp_log_loss"),
    ),
    Group(
        "metrics",
        "Metrics",
        "families/metrics",
        "Evaluation from hard predictions; no gradients.",
        (
            "confusion_matrix",
            "iou_score",
            "dice_score",
            "iou_from_confusion",
            "dice_from_confusion",
            "mean_score",
            "ConfusionMatrixMetric",
            "hausdorff_distance",
            "average_surface_distance",
        ),
    ),
    Group(
        "helpers",
        "Registry and helpers",
        "families/helpers",
        "Look losses up by name, combine them, derive class weights.",
        ("get_loss", "list_losses", "combine", "inverse_frequency_weights"),
    ),
)


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

    rows = ["| registry name | function | family | activations (default first) | dense labels |",
            "|---|---|---|---|---|"]
    for name in module.list_losses():
        info = loss_info(name)
        fname = info.fn.__name__
        group = group_of(fname)
        family = f"{{doc}}`{group.title} </{group.page}>`" if group else info.kind
        ref = (f"{{func}}`~segloss_jax.{fname}`" if fname in module.__all__ else f"`{fname}`")
        acts = ", ".join(f"`{a!r}`" for a in info.activations)
        rows.append(f"| `\"{name}\"` | {ref} | {family} | {acts} | "
                    f"{'yes' if info.dense_labels else 'no'} |")
    write_if_changed(docs / "_generated" / "fragments" / "registry.md", "\n".join(rows) + "\n")

