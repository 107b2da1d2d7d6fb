"""segloss_jax: semantic-segmentation losses and metrics in pure, jit-compiled JAX.

Every loss takes ``logits`` (``[B, *spatial, C]``, channels last) first and
``labels`` (integer ``[B, *spatial]`` or dense ``[B, *spatial, C]``) second, with
every other argument keyword-only. The documentation's conventions page
describes the keywords the losses share.
"""

# Boundary losses (and the distance-weighted cross-entropy, a pixel-wise loss on distance maps).
# Registry and helpers.
from segloss_jax._src import families as _families
from segloss_jax._src.boundary import (
    boundary_loss,
    distance_weighted_cross_entropy,
    hausdorff_dt_loss,
    shape_aware_loss,
    target_distance_map,
)

# Compound losses (and `combine`, a registry helper).
from segloss_jax._src.compound import (
    combine,
    combo_loss,
    dice_ce_loss,
    dice_focal_loss,
    exp_log_loss,
    unified_focal_loss,
)

# Distance transforms.
from segloss_jax._src.distance import distance_transform_edt, signed_distance

# Lovász losses.
from segloss_jax._src.lovasz import lovasz_hinge_loss, lovasz_softmax_loss

# Metrics.
from segloss_jax._src.metrics import (
    CalibrationErrorMetric,
    ConfusionMatrixMetric,
    average_surface_distance,
    calibration_error,
    confusion_matrix,
    dice_from_confusion,
    dice_score,
    hausdorff_distance,
    iou_from_confusion,
    iou_score,
    mean_score,
    surface_dice,
)

# Pixel-wise (distribution-based) losses.
from segloss_jax._src.pixelwise import (
    balanced_cross_entropy,
    binary_cross_entropy,
    cross_entropy,
    focal_loss,
    poly_cross_entropy,
    poly_focal_loss,
    topk_cross_entropy,
    weighted_cross_entropy,
)

# Region losses.
from segloss_jax._src.region import (
    dice_loss,
    dice_semimetric_loss,
    focal_tversky_loss,
    generalized_dice_loss,
    jaccard_loss,
    jaccard_metric_loss,
    log_cosh_dice_loss,
    mcc_loss,
    sensitivity_specificity_loss,
    tversky_loss,
)
from segloss_jax._src.registry import get_loss, list_losses

# Topology losses.
from segloss_jax._src.skeleton import cldice_loss, dice_cldice_loss

# Structural losses.
from segloss_jax._src.structural import ssim_loss, structural_similarity_loss

# Deep supervision (a helper).
from segloss_jax._src.supervision import deep_supervision

# Region losses: the generalized Wasserstein Dice (a module of its own).
from segloss_jax._src.wasserstein import generalized_wasserstein_dice_loss

# Helpers.
from segloss_jax._src.weights import inverse_frequency_weights

__version__ = "0.1.0"

# Family by family, as segloss_jax/_src/families.py orders them (the docs follow it too).
__all__ = _families.public_names()
