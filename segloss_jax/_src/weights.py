r"""Class weights from label statistics.

:func:`inverse_frequency_weights` counts the labels of a sample of batches and
returns ``[C]`` weights for the ``class_weights`` keyword of every loss. It is
jit-able with a static ``num_classes`` and pure (no host round trip), so it can
run on device over a large sample.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from segloss_jax._src import checks
from segloss_jax._src.kernel import kernel
from segloss_jax._src.metrics.counts import check_labels, counted, float_dtype

__all__ = ["inverse_frequency_weights"]


def inverse_frequency_weights(
    labels: chex.Array,
    num_classes: int,
    *,
    power: float = 1.0,
    where: chex.Array | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Class weights from label frequencies: rare classes weigh more.

    .. math::

       w_c = \frac{f_c^{-k}}{\frac{1}{|P|} \sum_{j \in P} f_j^{-k}} \quad (c \in P),
       \qquad f_c = \frac{n_c}{\sum_j n_j}

    with :math:`n_c` the number of valid pixels labelled :math:`c`, :math:`k` the
    ``power`` and :math:`P` the classes present in ``labels``. The weights of the
    present classes average 1, so a weighted cross-entropy keeps its scale;
    ``power=0.5`` gives the square-root weights of Wong et al. (the
    :func:`exp_log_loss` paper), ``power=1`` plain inverse frequency (the
    "balanced" weights of scikit-learn, up to a common factor).

    A class that never occurs in ``labels`` has no frequency: it gets the
    largest weight of the present classes (it is at least as rare as the
    rarest one seen), never ``inf``. Estimate the weights from enough batches
    that every class occurs. With no valid pixel at all, every weight is 1.

    Args:
      labels: integer class indices of any shape, e.g. ``[N, *spatial]`` for a
        sample of batches.
      num_classes: number of classes ``C >= 2`` (static).
      power: exponent :math:`k \ge 0` (0 gives all ones).
      where: optional bool or integer mask (non-zero = counted), broadcastable
        to ``labels``.
      ignore_index: label value whose pixels are not counted.

    Returns:
      ``[C]`` float32 non-negative weights, usable as ``class_weights`` of
      every loss.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 255])  # class 3 absent
      >>> print(sl.inverse_frequency_weights(labels, 4, ignore_index=255))
      [0.3 0.9 1.8 1.8]

    References:
      King & Zeng, "Logistic regression in rare events data", Political
      Analysis 2001 (scikit-learn's ``class_weight="balanced"``); Wong et al.,
      "3D segmentation with exponential logarithmic loss for highly unbalanced
      object sizes", MICCAI 2018.
    """
    labels = check_labels(labels, num_classes, where, ignore_index)
    checks.check_nonnegative("power", power)
    return _weights_kernel(labels, where, jnp.asarray(power, float_dtype()),
                           num_classes=num_classes, ignore_index=ignore_index)


@kernel
def _weights_kernel(labels, where, power, *, num_classes, ignore_index):
    labels, valid = counted(labels, num_classes, where, ignore_index)
    index = jnp.where(valid, labels, num_classes)
    counts = jnp.bincount(index.ravel(), length=num_classes + 1)[:num_classes]
    counts = counts.astype(power.dtype)
    present = counts > 0
    # In logs: f^-k overflows float32 for rare classes and large powers.
    log_w = -power * (jnp.log(jnp.where(present, counts, 1)) - jnp.log(jnp.sum(counts)))
    log_w = jnp.where(present, log_w, -jnp.inf)
    n_present = jnp.sum(present)
    log_mean = jax.nn.logsumexp(log_w) - jnp.log(jnp.maximum(n_present, 1).astype(power.dtype))
    w = jnp.exp(log_w - jnp.where(n_present > 0, log_mean, 0))
    w = jnp.where(present, w, jnp.max(w))
    return jnp.where(n_present > 0, w, 1)
