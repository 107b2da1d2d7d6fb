"""Tests for ``skeleton_recall_loss`` (Kirchhoff et al., ECCV 2024).

Values against the float64 reference written from the formula (``reference.skeleton_recall_loss``)
with the skeleton of nnU-Net's recipe (``reference.skeleton_target``: scikit-image and
scipy); nnU-Net's own convention (``reference.nnunet_skeleton_recall``: it returns
``−rec``); gradients by finite differences (``check_grads``). The contract suite
(``test_contract.py``) covers jit, vmap, dtypes and the shared keywords generically.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from jax.test_util import check_grads
from xla_options import jit_default_emitters

import segloss_jax as sl


def _case(shape, num_classes, seed=0):
    """Logits and labels with thin blobs of every class, and a valid mask."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for c in range(1, max(num_classes, 2)):
        labels[ndi.gaussian_filter(rng.normal(size=shape), 1.2) > 0.3] = c
    logits = rng.normal(scale=2.0, size=(*shape, num_classes))
    valid = rng.random(shape) > 0.2
    return logits, labels, valid


def _in_graph_skeleton(labels, valid):
    """The target the loss computes itself: excluded elements count as foreground."""
    return ref.skeleton_target(labels, foreground=(labels != 0) | ~valid)


KEYWORDS = [
    {},
    {"per_image": True},
    {"classes": "present", "reduction": "none"},
    {"per_image": True, "reduction": "none", "smooth": (0.0, 1e-3)},
    {"class_weights": [0.0, 1.0, 3.0], "reduction": "sum"},
    {"smooth": 1.0},
]


@pytest.mark.parametrize("kwargs", KEYWORDS)
def test_value_equals_reference_softmax(kwargs):
    logits, labels, _ = _case((3, 12, 13), 3)
    expected = ref.skeleton_recall_loss(logits, labels, ref.skeleton_target(labels), **kwargs)
    value = sl.skeleton_recall_loss(jnp.asarray(logits, jnp.float32), labels, **kwargs)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("exclusion", ["where", "ignore_index"])
def test_value_with_excluded_elements(exclusion):
    logits, labels, valid = _case((2, 12, 13), 3, seed=1)
    if exclusion == "where":
        kwargs = {"where": valid}
    else:
        labels = np.where(valid, labels, 255)
        kwargs = {"ignore_index": 255}
    skeleton = _in_graph_skeleton(labels, valid)
    expected = ref.skeleton_recall_loss(logits, labels, skeleton, **kwargs)
    np.testing.assert_allclose(sl.skeleton_recall_loss(logits, labels, **kwargs), expected,
                               rtol=1e-5, atol=1e-6)


def test_sigmoid_one_channel_and_3d():
    logits, labels, valid = _case((2, 6, 7, 8), 1, seed=2)
    skeleton = _in_graph_skeleton(labels, valid)
    expected = ref.skeleton_recall_loss(logits, labels, skeleton, activation="sigmoid",
                                        where=valid, per_image=True)
    # The 3D skeleton target is compiled with the default emitters (tests/xla_options.py).
    value = jit_default_emitters(functools.partial(
        sl.skeleton_recall_loss, activation="sigmoid", per_image=True))(logits, labels,
                                                                         where=valid)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    # With one channel it is the foreground: include_background changes nothing.
    again = sl.skeleton_recall_loss(logits, labels, skeleton=skeleton, activation="sigmoid",
                                    where=valid, per_image=True, include_background=True)
    np.testing.assert_allclose(again, value, rtol=1e-6)


def test_precomputed_skeleton():
    logits, labels, _ = _case((2, 12, 13), 3, seed=3)
    thin = ref.skeleton_target(labels, tube=False)
    expected = ref.skeleton_recall_loss(logits, labels, thin)
    loss = jax.jit(lambda x, y, s: sl.skeleton_recall_loss(x, y, skeleton=s))
    np.testing.assert_allclose(loss(logits, labels, thin), expected, rtol=1e-5, atol=1e-6)
    # The default target, precomputed, gives the in-graph value.
    np.testing.assert_allclose(
        sl.skeleton_recall_loss(logits, labels, skeleton=sl.skeleton_target(labels)),
        sl.skeleton_recall_loss(logits, labels), rtol=1e-6)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_equals_nnunet_minus_one(batch_dice):
    """nnU-Net's ``SoftSkeletonRecallLoss`` returns ``−rec``: this loss minus 1."""
    logits, labels, valid = _case((3, 12, 13), 3, seed=4)
    skeleton = np.where(valid, ref.skeleton_target(labels), 0)  # as its trainer masks it
    probs = ref.softmax(np.asarray(logits, np.float64))
    expected = ref.nnunet_skeleton_recall(probs, skeleton, valid, batch_dice=batch_dice)
    ours = sl.skeleton_recall_loss(logits, labels, skeleton=skeleton, where=valid,
                                   per_image=not batch_dice)
    np.testing.assert_allclose(ours - 1, expected, rtol=1e-5, atol=1e-6)


def test_gradients_against_finite_differences():
    with jax.enable_x64(True):
        logits, labels, valid = _case((2, 8, 9), 3, seed=5)
        skeleton = _in_graph_skeleton(labels, valid)
        for order, kwargs in ((2, {}), (1, {"per_image": True, "where": valid})):
            loss = jax.jit(lambda x, kw=kwargs: sl.skeleton_recall_loss(
                x, labels, skeleton=skeleton, **kw))
            check_grads(loss, (jnp.asarray(logits),), order=order, modes=("rev",),
                        eps=1e-4)
        # The in-graph skeleton has no gradient: the same gradient as precomputed.
        grads = [jax.jit(jax.grad(lambda x, s=s: sl.skeleton_recall_loss(
            x, labels, skeleton=s, where=valid)))(logits) for s in (None, skeleton)]
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


def test_unit_without_skeleton_scores_zero_with_zero_gradient():
    logits = jnp.asarray(np.random.default_rng(6).normal(size=(2, 6, 7, 1)))
    empty = jnp.zeros((2, 6, 7), jnp.int32)
    for smooth in (1e-5, (0.0, 1.0)):
        value, grad = jax.jit(jax.value_and_grad(
            lambda x, s=smooth: sl.skeleton_recall_loss(x, empty, activation="sigmoid",
                                                        smooth=s)))(logits)
        assert value == 0 and not np.any(grad)


def test_perfect_and_missing_predictions():
    labels = np.zeros((1, 9, 9), np.int32)
    labels[0, 4, :] = 1
    sure = np.where(labels == 1, 30.0, -30.0)[..., None]
    missed = -np.abs(sure)
    perfect, missing = jax.jit(lambda a, b, y: tuple(  # one program for both
        sl.skeleton_recall_loss(x, y, activation="sigmoid") for x in (a, b)))(
        sure, missed, labels)
    assert float(perfect) < 1e-6
    # (0 + s)/(9 + s) with s = 1e-5: the loss is 1 up to the smoothing.
    np.testing.assert_allclose(missing, 1.0, atol=2e-6)


def test_bad_input():
    logits, labels, _ = _case((1, 6, 7), 3)
    with pytest.raises(ValueError, match="include_background=True"):
        sl.skeleton_recall_loss(logits, labels, include_background=True)
    with pytest.raises(ValueError, match="integer `labels`"):
        sl.skeleton_recall_loss(logits, jax.nn.one_hot(labels, 3))
    with pytest.raises(ValueError, match="`skeleton` must have the shape"):
        sl.skeleton_recall_loss(logits, labels, skeleton=labels[:, :-1])
    with pytest.raises(TypeError, match="`skeleton` must hold integer"):
        sl.skeleton_recall_loss(logits, labels, skeleton=labels.astype(np.float32))
    with pytest.raises(ValueError, match="2 or 3 spatial axes"):
        sl.skeleton_recall_loss(logits[:, 0], labels[:, 0])
