"""segloss_jax: semantic-segmentation losses and metrics in pure, jit-compiled JAX.

Every loss takes ``logits`` (``[B, *spatial, C]``, channels last) first and
``labels`` (integer ``[B, *spatial]`` or dense ``[B, *spatial, C]``) second, with
every other argument keyword-only. See the API contract in the documentation.
"""

# Pixel-wise (distribution-based) losses.
from segloss_jax._src.pixelwise import (
    balanced_cross_entropy,
    binary_cross_entropy,
    cross_entropy,
    focal_loss,
    weighted_cross_entropy,
)

# Registry and helpers.
from segloss_jax._src.registry import get_loss, list_losses

__version__ = "0.1.0"

__all__ = (
    # Pixel-wise losses.
    "balanced_cross_entropy",
    "binary_cross_entropy",
    "cross_entropy",
    "focal_loss",
    "weighted_cross_entropy",
    # Registry and helpers.
    "get_loss",
    "list_losses",
)
