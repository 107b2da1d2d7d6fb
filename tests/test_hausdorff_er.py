"""Tests for ``hausdorff_er_loss`` (kornia's erosion Hausdorff loss) and
``log_hausdorff_dt_loss`` (MONAI's ``LogHausdorffDTLoss``).

Values against the float64 references written from the formulas
(``reference.hausdorff_er_loss``; ``log1p`` of ``reference.hausdorff_dt_loss``), against
kornia and MONAI themselves where they are installed (the ``peers`` extra; skipped
otherwise), gradients by finite differences. The contract suite covers jit, vmap, dtypes
and the shared keywords generically.
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
    """Logits, labels of smooth regions (errors that survive a few erosions), a mask."""
    rng = np.random.default_rng(seed)
    fields = np.stack([ndi.gaussian_filter(rng.normal(size=shape), 1.5)
                       for _ in range(max(num_classes, 2))], -1)
    labels = np.argmax(fields, -1).astype(np.int32)
    logits = rng.normal(scale=3.0, size=(*shape, num_classes))
    valid = rng.random(shape) > 0.2
    return logits, labels, valid


KEYWORDS = [
    {},
    {"alpha": 1.5, "iterations": 4, "reduction": "sum"},
    {"include_background": False, "reduction": "none"},
    {"iterations": 0},
]


@pytest.mark.parametrize("kwargs", KEYWORDS)
def test_value_equals_reference(kwargs):
    logits, labels, _ = _case((2, 12, 13), 3)
    expected = ref.hausdorff_er_loss(logits, labels, **kwargs)
    value = jax.jit(lambda x: sl.hausdorff_er_loss(x, labels, **kwargs))(logits)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("exclusion", ["where", "ignore_index"])
def test_excluded_elements_3d_and_sigmoid(exclusion):
    logits, labels, valid = _case((2, 6, 7, 8), 1, seed=1)
    if exclusion == "where":
        kwargs = {"where": valid}
    else:
        labels = np.where(valid, labels, 255)
        kwargs = {"ignore_index": 255}
    expected = ref.hausdorff_er_loss(logits, labels, activation="sigmoid", iterations=3,
                                     **kwargs)
    value = jax.jit(lambda x: sl.hausdorff_er_loss(x, labels, activation="sigmoid",
                                                   iterations=3, **kwargs))(logits)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spatial", [(10, 11), (5, 6, 7)], ids=["2d", "3d"])
def test_equals_kornia(spatial):
    torch = pytest.importorskip("torch", reason="torch is not installed (the `peers` extra)")
    losses = pytest.importorskip("kornia.losses", reason="kornia is not installed")
    peer = losses.HausdorffERLoss if len(spatial) == 2 else losses.HausdorffERLoss3D
    # kornia's docstring example, in float64: softmax probabilities and random labels.
    torch.manual_seed(0)
    probs = torch.randn(2, 3, *spatial, dtype=torch.float64).softmax(1).requires_grad_()
    target = (torch.rand(2, 1, *spatial) * 3).long()
    value = peer(k=5)(probs, target)
    value.backward()
    with jax.enable_x64(True):
        x = np.moveaxis(probs.detach().numpy(), 1, -1)
        y = target[:, 0].numpy()
        (ours, grad), ours_none = jax.jit(lambda x: (  # one compiled program
            jax.value_and_grad(lambda x: sl.hausdorff_er_loss(x, y, activation=None,
                                                              iterations=5))(x),
            sl.hausdorff_er_loss(x, y, activation=None, iterations=5, reduction="none")))(x)
        # kornia's stencil weight is float32(1/5) (or 1/7) even in float64: 1e-8 apart.
        np.testing.assert_allclose(ours, value.item(), rtol=1e-6)
        np.testing.assert_allclose(grad, np.moveaxis(probs.grad.numpy(), 1, -1), rtol=1e-5,
                                   atol=1e-12)
        none = peer(k=5, reduction="none")(probs, target).detach().numpy()[:, :, 0]
        np.testing.assert_allclose(ours_none, np.moveaxis(none, 0, -1), rtol=1e-5, atol=1e-6)


def test_gradients_against_finite_differences():
    with jax.enable_x64(True):
        logits, labels, valid = _case((1, 7, 8), 3, seed=2)
        loss = jax.jit(lambda x: sl.hausdorff_er_loss(x, labels, iterations=3, where=valid))
        check_grads(loss, (jnp.asarray(logits),), order=1, modes=("rev",), eps=1e-5)
        # alpha may be traced (one compiled program for every value).
        by_alpha = jax.jit(lambda a: sl.hausdorff_er_loss(logits, labels, alpha=a,
                                                          iterations=3))
        np.testing.assert_allclose(by_alpha(1.5), ref.hausdorff_er_loss(
            logits, labels, alpha=1.5, iterations=3), rtol=1e-10)


def test_small_errors_erode_away():
    _, labels, _ = _case((1, 9, 10), 2, seed=3)
    sure = 3.0 * (2.0 * np.asarray(jax.nn.one_hot(labels, 2)) - 1.0)
    value, grad = jax.jit(jax.value_and_grad(lambda x: sl.hausdorff_er_loss(x, labels)))(sure)
    assert value == 0 and not np.any(grad)


def test_bad_input():
    logits, labels, _ = _case((1, 6, 7), 3)
    with pytest.raises(TypeError, match="`iterations` must be a non-negative int, got 2.5"):
        sl.hausdorff_er_loss(logits, labels, iterations=2.5)
    with pytest.raises(ValueError, match="`alpha` must be non-negative, got -1.0"):
        sl.hausdorff_er_loss(logits, labels, alpha=-1.0)


# ------------------------------------------------------------------ log_hausdorff_dt_loss


@pytest.mark.parametrize("kwargs", [{}, {"per_image": False, "include_background": True},
                                    {"reduction": "none", "alpha": 1.0}])
def test_log_hausdorff_equals_log1p_of_reference(kwargs):
    logits, labels, _ = _case((2, 9, 10), 3, seed=4)
    probs, dense = (np.moveaxis(a, -1, 1) for a in (ref.softmax(logits),
                                                     ref.one_hot(labels, 3)))
    reduction = kwargs.get("reduction", "mean")
    include = kwargs.get("include_background", False)
    expected = ref.hausdorff_dt_loss(probs, dense, alpha=kwargs.get("alpha", 2.0),
                                     include_background=include,
                                     batch=not kwargs.get("per_image", True),
                                     reduction=reduction)
    value = jax.jit(lambda x: sl.log_hausdorff_dt_loss(x, labels, **kwargs))(logits)
    if reduction == "none":
        value = value[..., 1:]  # the dropped background: log1p(0) = 0
    np.testing.assert_allclose(value, np.log1p(expected), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch", [False, True])
def test_log_hausdorff_equals_monai(batch):
    torch = pytest.importorskip("torch", reason="torch is not installed (the `peers` extra)")
    monai_losses = pytest.importorskip("monai.losses", reason="MONAI is not installed")
    logits, labels, _ = _case((2, 9, 10), 3, seed=5)
    peer = monai_losses.LogHausdorffDTLoss(softmax=True, to_onehot_y=True, batch=batch)
    expected = peer(torch.from_numpy(np.moveaxis(logits, -1, 1).copy()),
                    torch.from_numpy(labels[:, None].astype(np.int64))).item()
    with jax.enable_x64(True):
        ours = sl.log_hausdorff_dt_loss(logits, labels, per_image=not batch)
        np.testing.assert_allclose(ours, expected, rtol=1e-6)
