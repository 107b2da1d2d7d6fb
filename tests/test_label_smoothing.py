"""``label_smoothing`` on ``binary_cross_entropy`` and ``dice_ce_loss``: the float64
formula, smp's ``SoftBCEWithLogitsLoss`` mapping (its code transcribed), the Dice term on
raw targets, and MONAI's ``DiceCELoss`` where MONAI is installed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

import segloss_jax as sl

SHAPE = (2, 5, 4)
IGNORE = 255


def _case(c, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.5, size=(*SHAPE, c))
    labels = rng.integers(0, max(c, 2), size=SHAPE)
    return x, labels


def _f64(fn, *args, **kwargs):
    with jax.enable_x64(True):
        return np.asarray(jax.jit(lambda *a: fn(*a, **kwargs))(*map(jnp.asarray, args)))


@pytest.mark.parametrize("c", [1, 3])
def test_binary_cross_entropy_smooths_to_eps_over_two(c):
    x, labels = _case(c)
    labels[0, 0, 0] = IGNORE
    valid = labels != IGNORE
    g = ref.one_hot(np.where(valid, labels, 0), c)
    eps = 0.2
    want = ref.pixel_mean(ref.bce(ref.sigmoid(x), (1 - eps) * g + eps / 2), valid)
    got = _f64(sl.binary_cross_entropy, x, labels, label_smoothing=eps, ignore_index=IGNORE)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_smp_soft_bce_mapping():
    """smp's ``SoftBCEWithLogitsLoss(smooth_factor=s, ignore_index=i)``: targets
    ``(1 − y)s + y(1 − s)``, ignored elements zeroed, the mean over every element."""
    x, labels = _case(1, seed=1)
    labels[1, 2, :3] = IGNORE
    y = labels[..., None].astype(np.float64)
    s = 0.1
    soft = (1 - y) * s + y * (1 - s)
    loss = np.maximum(x, 0) - x * soft + np.log1p(np.exp(-np.abs(x)))  # BCE with logits
    smp = (loss * (y != IGNORE)).mean()
    got = _f64(sl.binary_cross_entropy, x, labels, label_smoothing=2 * s, ignore_index=IGNORE,
               reduction="sum") / x.size
    np.testing.assert_allclose(got, smp, rtol=1e-12)


@pytest.mark.parametrize("act,c", [("softmax", 3), ("sigmoid", 2)])
def test_dice_ce_smooths_the_cross_entropy_term_only(act, c):
    """Value and gradient: Dice on raw targets plus the smoothed cross-entropy."""
    x, labels = _case(c, seed=2)
    labels[0, 1, :2] = IGNORE
    eps = 0.15
    term = sl.cross_entropy if act == "softmax" else sl.binary_cross_entropy
    kw = {"activation": act, "ignore_index": IGNORE, "include_background": False}

    def both(x, y):
        whole = sl.dice_ce_loss(x, y, label_smoothing=eps, **kw)
        parts = sl.dice_loss(x, y, **kw) + term(x, y, label_smoothing=eps, activation=act,
                                               ignore_index=IGNORE)
        return jnp.stack([whole, parts])

    with jax.enable_x64(True):
        values, grads = jax.jit(lambda x, y: (both(x, y), jax.jacrev(both)(x, y)))(
            jnp.asarray(x), jnp.asarray(labels))
    np.testing.assert_allclose(values[0], values[1], rtol=1e-12)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-14)
    assert not np.isclose(values[0], _f64(sl.dice_ce_loss, x, labels, **kw))


@pytest.mark.parametrize("batch", [False, True])
def test_monai_dice_ce(batch):
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    x, labels = _case(4, seed=3)
    eps = 0.1
    peer = monai_losses.DiceCELoss(softmax=True, to_onehot_y=True, label_smoothing=eps,
                                   batch=batch)
    want = peer(torch.tensor(np.moveaxis(x, -1, 1)), torch.tensor(labels[:, None])).item()
    got = _f64(sl.dice_ce_loss, x, labels, label_smoothing=eps, per_image=not batch)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_bad_label_smoothing():
    x, labels = _case(3)
    for fn in (sl.binary_cross_entropy, sl.dice_ce_loss):
        with pytest.raises(ValueError, match="label_smoothing"):
            fn(jnp.asarray(x), jnp.asarray(labels),
               **({"activation": "sigmoid"} if fn is sl.binary_cross_entropy else {}),
               label_smoothing=1.5)
