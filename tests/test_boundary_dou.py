"""Tests for ``boundary_dou_loss`` (Sun et al., MICCAI 2023).

Values against the float64 reference written from the formula
(``reference.boundary_dou_loss``) and against a transcription of the authors' code
(``reference.sun_boundary_dou``); gradients by finite differences. The contract suite
(``test_contract.py``) covers jit, vmap, dtypes and the shared keywords generically.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from jax.test_util import check_grads

import segloss_jax as sl


def _case(shape, num_classes, seed=0):
    """Logits, labels with blobs of every class (thin and thick), and a valid mask."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for c in range(1, max(num_classes, 2)):
        labels[ndi.gaussian_filter(rng.normal(size=shape), 1.0 + c) > 0.1] = c
    logits = rng.normal(scale=2.0, size=(*shape, num_classes))
    valid = rng.random(shape) > 0.2
    return logits, labels, valid


KEYWORDS = [
    {},
    {"per_image": True, "reduction": "none"},
    {"include_background": False, "classes": "present", "alpha_max": 0.5},
    {"smooth": (0.0, 1e-3), "class_weights": [1.0, 0.0, 2.0], "reduction": "sum"},
]


@pytest.mark.parametrize("kwargs", KEYWORDS)
def test_value_equals_reference(kwargs):
    logits, labels, _ = _case((3, 10, 11), 3)
    labels[1] = np.where(labels[1] == 2, 0, labels[1])  # class 2 absent from one image
    expected = ref.boundary_dou_loss(logits, labels, **kwargs)
    value = sl.boundary_dou_loss(jnp.asarray(logits, jnp.float32), labels, **kwargs)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


def test_equals_the_authors_code():
    logits, labels, _ = _case((2, 12, 13), 4, seed=1)
    expected = ref.sun_boundary_dou(np.moveaxis(ref.softmax(logits), -1, 1), labels, 4)
    np.testing.assert_allclose(sl.boundary_dou_loss(logits, labels), expected, rtol=1e-5)


@pytest.mark.parametrize("exclusion", ["where", "ignore_index"])
def test_excluded_elements_and_3d_sigmoid(exclusion):
    logits, labels, valid = _case((2, 5, 6, 7), 1, seed=2)
    if exclusion == "where":
        kwargs = {"where": valid}
    else:
        labels = np.where(valid, labels, 255)
        kwargs = {"ignore_index": 255}
    extra = ({"per_image": True, "class_weights": [2.0], "reduction": "sum"}
             if exclusion == "where" else {"include_background": False})
    expected = ref.boundary_dou_loss(logits, labels, activation="sigmoid", **kwargs, **extra)
    value = jax.jit(lambda x: sl.boundary_dou_loss(x, labels, activation="sigmoid", **kwargs,
                                                   **extra))(logits)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


def test_dense_labels_and_probabilities():
    logits, labels, _ = _case((2, 9, 10), 3, seed=3)
    dense = np.asarray(jax.nn.one_hot(labels, 3)) * 0.9 + 0.1 / 3  # soft targets
    expected = ref.boundary_dou_loss(logits, dense, per_image=True)
    value = jax.jit(lambda x, y: sl.boundary_dou_loss(x, y, per_image=True))(logits, dense)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    p = ref.sigmoid(logits[..., :1])
    expected = ref.boundary_dou_loss(p, labels % 2, activation=None)
    value = jax.jit(lambda x: sl.boundary_dou_loss(x, labels % 2, activation=None))(p)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_gradients_against_finite_differences():
    with jax.enable_x64(True):
        logits, labels, valid = _case((2, 7, 8), 3, seed=4)
        loss = jax.jit(lambda x: sl.boundary_dou_loss(x, labels, per_image=True, where=valid))
        check_grads(loss, (jnp.asarray(logits),), order=1, modes=("rev",), eps=1e-4)
        x1 = jnp.asarray(logits[..., :1])
        loss = jax.jit(lambda x: sl.boundary_dou_loss(x, labels % 2, activation="sigmoid"))
        check_grads(loss, (x1,), order=1, modes=("rev",), eps=1e-4)


def test_absent_class_scores_one_with_zero_gradient():
    logits, labels, _ = _case((1, 6, 7), 3, seed=5)
    labels = np.minimum(labels, 1)  # class 2 absent
    for smooth in (1e-5, (0.0, 1.0)):
        value, grad = jax.jit(jax.value_and_grad(lambda x, s=smooth: sl.boundary_dou_loss(
            x, labels, smooth=s, reduction="sum", class_weights=[0.0, 0.0, 1.0])))(logits)
        assert value == 1 and not np.any(grad)


def test_perfect_prediction_and_bounds():
    _, labels, _ = _case((2, 9, 10), 3, seed=6)
    sure = 40.0 * np.asarray(jax.nn.one_hot(labels, 3))
    assert float(sl.boundary_dou_loss(sure, labels)) < 1e-5
    wrong = np.roll(sure, 1, axis=-1)
    assert 0.99 < float(sl.boundary_dou_loss(wrong, labels)) <= 1.0 + 1e-6


def test_bad_alpha_max():
    logits, labels, _ = _case((1, 6, 7), 3)
    with pytest.raises(ValueError, match=r"`alpha_max` must lie in \[-1.0, 1.0\], got 1.5"):
        sl.boundary_dou_loss(logits, labels, alpha_max=1.5)
