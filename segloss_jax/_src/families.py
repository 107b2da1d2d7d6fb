"""The families of the public API: one table read by ``__all__``, the registry and the docs.

``segloss_jax.__all__`` lists the names family by family in this order; a
registered loss takes its family as its registry ``kind``; the API reference
(``docs/api_groups.py``) shows one section per family, with its page
``docs/families/<key>.md``. This module imports nothing from the package, so
the docs build can load it by path.
"""

from __future__ import annotations

from typing import NamedTuple


class Family(NamedTuple):
    key: str  # the registry kind of its losses, and its docs page families/<key>.md
    title: str
    blurb: str
    names: tuple[str, ...]


FAMILIES: tuple[Family, ...] = (
    Family("pixelwise", "Pixel-wise losses",
           "Cross-entropy and its weighted, balanced and focal forms: a sum of per-pixel terms.",
           ("cross_entropy", "binary_cross_entropy", "weighted_cross_entropy",
            "balanced_cross_entropy", "focal_loss", "distance_weighted_cross_entropy",
            "topk_cross_entropy", "ohem_cross_entropy", "poly_cross_entropy",
            "poly_focal_loss")),
    Family("region", "Region losses",
           "Scores of soft confusion statistics (tp, fp, fn) per class or per (image, class).",
           ("dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss",
            "log_cosh_dice_loss", "sensitivity_specificity_loss", "generalized_dice_loss",
            "dice_semimetric_loss", "jaccard_metric_loss", "mcc_loss",
            "generalized_wasserstein_dice_loss", "boundary_dou_loss", "blob_loss")),
    Family("structural", "Structural losses",
           "Losses on local structure: SSIM, the correlation-maximized structural similarity "
           "loss, neighbour-aware calibration and region mutual information.",
           ("structural_similarity_loss", "ssim_loss", "nacl_loss", "rmi_loss")),
    Family("lovasz", "Lovász losses", "Convex surrogates of the Jaccard index (Berman et al.).",
           ("lovasz_hinge_loss", "lovasz_softmax_loss")),
    Family("distance", "Distance transforms",
           "Exact Euclidean distance transforms, jit-able, no host callback.",
           ("distance_transform_edt", "signed_distance")),
    Family("boundary", "Boundary losses",
           "Losses weighted by distances to the target or predicted boundary.",
           ("boundary_loss", "hausdorff_dt_loss", "log_hausdorff_dt_loss", "hausdorff_er_loss",
            "shape_aware_loss", "target_distance_map")),
    Family("topology", "Topology losses",
           "Skeleton-based losses that keep thin structures connected (clDice, Skeleton "
           "Recall), and exact skeletons inside the compiled step.",
           ("cldice_loss", "dice_cldice_loss", "skeleton_recall_loss", "skeleton_target",
            "skeletonize")),
    Family("compound", "Compound losses",
           "Fixed combinations of a region term and a pixel-wise term.",
           ("dice_ce_loss", "dice_focal_loss", "generalized_dice_focal_loss", "combo_loss",
            "exp_log_loss",
            "unified_focal_loss")),
    Family("metrics", "Metrics", "Evaluation of predictions and probabilities; no gradients.",
           ("confusion_matrix", "iou_score", "dice_score", "iou_from_confusion",
            "dice_from_confusion", "mean_score", "ConfusionMatrixMetric", "hausdorff_distance",
            "average_surface_distance", "surface_dice", "boundary_iou", "calibration_error",
            "CalibrationErrorMetric")),
    Family("helpers", "Registry and helpers",
           "Look losses up by name, combine them, derive class weights.",
           ("get_loss", "list_losses", "combine", "inverse_frequency_weights", "unet_weight_map",
            "deep_supervision")),
)


def public_names() -> tuple[str, ...]:
    """Every public name, family by family (``segloss_jax.__all__``)."""
    return tuple(name for family in FAMILIES for name in family.names)


def family_of(name: str) -> Family:
    """The family listing ``name``; ``KeyError`` if none does."""
    for family in FAMILIES:
        if name in family.names:
            return family
    raise KeyError(f"{name!r} is in no family of segloss_jax/_src/families.py.")
