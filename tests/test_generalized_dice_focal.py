"""``generalized_dice_focal_loss``: its two terms (value and gradient), the keyword
routing, and MONAI's ``GeneralizedDiceFocalLoss`` where MONAI is installed."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import segloss_jax as sl

SHAPE = (2, 6, 5)
IGNORE = 255


def _case(c, seed=0, ignored=True):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(*SHAPE, c))
    labels = rng.integers(0, c, size=SHAPE)
    labels[1, 1:] = np.where(labels[1, 1:] == 2, 1, labels[1, 1:])  # class 2 absent there
    if ignored:
        labels[0, 0, :3] = IGNORE
    return x, labels


CASES = [
    ({}, {}),
    ({"focal_activation": "sigmoid", "per_image": True}, {"activation": "sigmoid"}),
    ({"focal_activation": "sigmoid", "include_background": False,
      "class_weights": (1.0, 2.0, 0.5, 1.5), "weighting": "simple", "gamma": 1.5},
     {"activation": "sigmoid"}),
]


@pytest.mark.parametrize("kw,focal_kw", CASES)
def test_is_the_sum_of_its_terms(kw, focal_kw):
    """Value and gradient equal ``generalized_dice_loss + focal_loss`` with the keywords
    routed: region ones to the GDL, class weights to the focal term only."""
    x, labels = _case(4)
    gdl_kw = {k: v for k, v in kw.items()
              if k in ("per_image", "include_background", "weighting")}
    focal_kw = {**focal_kw, **{k: v for k, v in kw.items() if k in ("class_weights", "gamma")}}
    drop = not kw.get("include_background", True)

    def both(x, y):
        whole = sl.generalized_dice_focal_loss(x, y, ignore_index=IGNORE, lambda_gdl=0.7,
                                               lambda_focal=1.3, **kw)
        focal_x, focal_y = x, y
        if drop:  # the focal term without channel 0: dense targets of channels 1..C-1
            focal_y = jax.nn.one_hot(y, 4)[..., 1:]
            focal_x = x[..., 1:]
            focal_kw_ = {k: (v[1:] if k == "class_weights" else v) for k, v in focal_kw.items()}
            focal = sl.focal_loss(focal_x, focal_y, where=y != IGNORE, **focal_kw_)
        else:
            focal = sl.focal_loss(focal_x, focal_y, ignore_index=IGNORE, **focal_kw)
        parts = 0.7 * sl.generalized_dice_loss(x, y, ignore_index=IGNORE, **gdl_kw) + 1.3 * focal
        return jnp.stack([whole, parts])

    with jax.enable_x64(True):
        values, grads = jax.jit(lambda x, y: (both(x, y), jax.jacrev(both)(x, y)))(
            jnp.asarray(x), jnp.asarray(labels))
    np.testing.assert_allclose(values[0], values[1], rtol=1e-12)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("batch,include_background", [(False, True), (True, False)])
def test_monai_generalized_dice_focal(batch, include_background):
    torch = pytest.importorskip("torch")
    monai_losses = pytest.importorskip("monai.losses")
    x, labels = _case(4, seed=1, ignored=False)
    weight = [1.0, 2.0, 0.5, 1.5]
    kept = weight if include_background else weight[1:]
    peer = monai_losses.GeneralizedDiceFocalLoss(
        softmax=True, to_onehot_y=True, batch=batch, include_background=include_background,
        weight=torch.tensor(kept, dtype=torch.float64), gamma=1.5, lambda_gdl=0.8, lambda_focal=1.2)
    want = peer(torch.tensor(np.moveaxis(x, -1, 1)), torch.tensor(labels[:, None])).item()
    with jax.enable_x64(True):
        got = sl.generalized_dice_focal_loss(
            jnp.asarray(x), jnp.asarray(labels), focal_activation="sigmoid",
            per_image=not batch, include_background=include_background,
            class_weights=weight, gamma=1.5, lambda_gdl=0.8, lambda_focal=1.2)
    # MONAI's one-hot target is float32, so are its class volumes and GDL weights.
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bad_options():
    x, labels = _case(1, ignored=False)
    x, labels = jnp.asarray(x), jnp.asarray(labels % 2)
    with pytest.raises(ValueError, match="softmax"):
        sl.generalized_dice_focal_loss(x, labels, activation="sigmoid",
                                       focal_activation="softmax")
    with pytest.raises(ValueError, match="focal_activation"):
        sl.generalized_dice_focal_loss(x, labels, activation="sigmoid", focal_activation="relu")
    with pytest.raises(ValueError, match="weighting"):
        sl.generalized_dice_focal_loss(x, labels, activation="sigmoid", weighting="cube")
