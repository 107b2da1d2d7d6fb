"""Compound losses and ``combine`` against the float64 NumPy references of ``reference.py``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.test_util import check_grads

import segloss_jax as sl

# ----------------------------------------------------------------------------- inputs


def inputs(act, seed=0, shape=(2, 5, 4), c=3):
    rng = np.random.default_rng(seed)
    c = c if act == "softmax" else 1
    x = rng.normal(scale=1.5, size=(*shape, c))
    y = rng.integers(0, max(c, 2), shape)
    y.reshape(shape[0], -1)[:, : max(c, 2)] = np.arange(max(c, 2))
    p = ref.softmax(x) if act == "softmax" else ref.sigmoid(x)
    return x, y, p, ref.one_hot(y, c)


def mask(seed=1, shape=(2, 5, 4)):
    m = np.random.default_rng(seed).random(shape) > 0.25
    m[:, 0, :3] = True
    return m


# ----------------------------------------------------------------------------- dice_ce


@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
@pytest.mark.parametrize("per_image", [False, True])
def test_dice_ce_matches_reference(act, per_image):
    x, y, p, g = inputs(act)
    valid = mask()
    w = np.array([0.5, 1.0, 2.0]) if act == "softmax" else None
    with jax.enable_x64(True):
        got = jax.jit(lambda x, y: sl.dice_ce_loss(
            x, y, activation=act, per_image=per_image, lambda_dice=0.7, lambda_ce=1.3,
            where=jnp.asarray(valid), class_weights=None if w is None else jnp.asarray(w)))(
            jnp.asarray(x), jnp.asarray(y))
    dice = ref.reduce_units(1 - ref.dice_scores(p, g, valid, per_image), None, "mean", w)
    want = 0.7 * dice + 1.3 * ref.mean_cross_entropy(p, g, valid, act == "sigmoid", w)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_dice_ce_routes_region_keywords_to_dice_only():
    x, y, _, _ = inputs("softmax")
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y)
    kw = dict(include_background=False, classes="present", smooth=(0.0, 1e-6), per_image=True)
    xb, yb, _, _ = inputs("sigmoid")
    xb, yb = jnp.asarray(xb, jnp.float32), jnp.asarray(yb)

    @jax.jit  # one compiled program for the three comparisons
    def pairs(x, y, xb, yb):
        return [(sl.dice_ce_loss(x, y, ignore_index=2, **kw),
                 sl.dice_loss(x, y, ignore_index=2, **kw) + sl.cross_entropy(x, y, ignore_index=2)),
                # activation=None: probabilities; categorical for C > 1, binary for C == 1.
                (sl.dice_ce_loss(jax.nn.softmax(x), y, activation=None), sl.dice_ce_loss(x, y)),
                (sl.dice_ce_loss(jax.nn.sigmoid(xb), yb, activation=None),
                 sl.dice_ce_loss(xb, yb, activation="sigmoid"))]

    (got, want), (from_probs, from_logits), (bin_probs, bin_logits) = pairs(x, y, xb, yb)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(from_probs, from_logits, rtol=1e-5)
    np.testing.assert_allclose(bin_probs, bin_logits, rtol=1e-5)


def test_dice_focal_matches_reference_and_reduces_to_dice_ce():
    x, y, p, g = inputs("softmax", seed=3)
    valid = np.ones(y.shape, bool)
    xs, ys, ps, gs = inputs("sigmoid", seed=4)
    with jax.enable_x64(True):
        got, gamma0, dice_ce, got_sigmoid = jax.jit(lambda x, y, xs, ys: (  # one program
            sl.dice_focal_loss(x, y, gamma=2.0, lambda_focal=0.5),
            sl.dice_focal_loss(x, y, gamma=0.0), sl.dice_ce_loss(x, y),
            sl.dice_focal_loss(xs, ys, activation="sigmoid", alpha=0.25)))(
            jnp.asarray(x), jnp.asarray(y), jnp.asarray(xs), jnp.asarray(ys))
        focal = np.mean(-np.sum(g * (1 - p) ** 2 * np.log(p), -1))
        dice = ref.reduce_units(1 - ref.dice_scores(p, g, valid), None, "mean")
        want = dice + 0.5 * focal
        np.testing.assert_allclose(got, want, rtol=1e-10)
        np.testing.assert_allclose(gamma0, dice_ce, rtol=1e-12)
        got = got_sigmoid
        pt = ps * gs + (1 - ps) * (1 - gs)
        at = 0.25 * gs + 0.75 * (1 - gs)
        focal = np.mean(-at * (1 - pt) ** 2 * np.log(pt))
        dice = ref.reduce_units(1 - ref.dice_scores(ps, gs, np.ones(ys.shape, bool)), None, "mean")
        want = dice + focal
        np.testing.assert_allclose(got, want, rtol=1e-10)


# ----------------------------------------------------------------------------- combo


@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
def test_combo_matches_reference(act):
    x, y, p, g = inputs(act, seed=5)
    valid = mask(seed=6)
    alpha, beta = 0.3, 0.8  # the paper's α: lambda_ce = α, lambda_dice = 1 − α
    with jax.enable_x64(True):
        got = jax.jit(lambda x, y: sl.combo_loss(x, y, lambda_ce=alpha, lambda_dice=1 - alpha,
                                                 beta=beta, activation=act,
                                                 where=jnp.asarray(valid)))(
            jnp.asarray(x), jnp.asarray(y))
    c = p.shape[-1]
    mbce = -(beta * g * np.log(p) + (1 - beta) * (1 - g) * np.log(1 - p))
    mbce = np.sum(valid[..., None] * mbce) / (valid.sum() * c)
    dice = ref.reduce_units(1 - ref.dice_scores(p, g, valid), None, "mean")
    want = alpha * mbce + (1 - alpha) * dice
    np.testing.assert_allclose(got, want, rtol=1e-8)


def test_combo_beta_weighs_false_negatives():
    # A false negative (and a true negative), then a false positive (and a true positive).
    labels = jnp.array([[1, 0]])
    with_fn, with_fp = jnp.full((1, 2, 1), -2.0), jnp.full((1, 2, 1), 2.0)
    f = functools.partial(sl.combo_loss, labels=labels, activation="sigmoid", lambda_ce=1.0,
                          lambda_dice=0.0)
    fn_hi, fn_lo, fp_hi, fp_lo = jax.jit(lambda a, b: [  # one compiled program
        f(a, beta=0.9), f(a, beta=0.1), f(b, beta=0.9), f(b, beta=0.1)])(with_fn, with_fp)
    assert fn_hi > fn_lo
    assert fp_hi < fp_lo
    # Checked while tracing: under jit nothing is compiled before they raise.
    with pytest.raises(ValueError, match="lambda_ce"):
        jax.jit(lambda a: f(a, lambda_ce=-0.5))(with_fn)
    with pytest.raises(ValueError, match="beta"):
        jax.jit(lambda a: f(a, beta=-0.1))(with_fn)


# ----------------------------------------------------------------------------- exp_log


@pytest.mark.parametrize("act,per_image,include_background,weighted", [
    ("softmax", False, True, False),
    ("softmax", True, False, True),
    ("sigmoid", False, True, False),
])
def test_exp_log_matches_reference(act, per_image, include_background, weighted):
    x, y, p, g = inputs(act, seed=7)
    valid = mask(seed=8)
    gamma = 0.3
    w = np.array([0.4, 1.0, 1.6]) if weighted else None
    with jax.enable_x64(True):
        got = jax.jit(lambda x, y: sl.exp_log_loss(
            x, y, activation=act, smooth=1.0, per_image=per_image,
            include_background=include_background, where=jnp.asarray(valid),
            class_weights=None if w is None else jnp.asarray(w)))(jnp.asarray(x), jnp.asarray(y))
    c = p.shape[-1]
    dice = ref.dice_scores(p, g, valid, per_image, smooth=1.0)
    keep = np.ones(dice.shape, bool)
    if not include_background and c > 1:
        keep[..., 0] = False
    dice_term = ref.reduce_units((-np.log(dice)) ** gamma, keep, "mean", w)
    ww = np.ones(c) if w is None else w
    if act == "sigmoid":
        bce = -(g * np.log(p) + (1 - g) * np.log(1 - p))
        cross = np.sum(valid[..., None] * ww * bce**gamma) / (valid.sum() * c)
    else:
        ce = -np.sum(g * np.log(p), -1)
        cross = np.sum(valid * np.sum(ww * g, -1) * ce**gamma) / valid.sum()
    np.testing.assert_allclose(got, 0.8 * dice_term + 0.2 * cross, rtol=1e-8)


def test_exp_log_perfect_prediction_has_finite_gradient():
    y = jnp.array([[0, 1, 2, 1]])
    x = 1e4 * jax.nn.one_hot(y, 3)  # probabilities exactly one-hot in float32
    value, grad = jax.jit(jax.value_and_grad(sl.exp_log_loss))(x, y)
    assert np.isfinite(value) and value < 1e-3
    assert np.all(np.isfinite(grad))


# ----------------------------------------------------------------------------- shared


@pytest.mark.parametrize("name", ["dice_ce_loss", "dice_focal_loss", "combo_loss", "exp_log_loss"])
def test_float64_gradients_match_finite_differences(name):
    x, y, _, _ = inputs("softmax", seed=9, shape=(1, 3, 3))
    fn = getattr(sl, name)
    with jax.enable_x64(True):
        f = jax.jit(lambda v: fn(v, jnp.asarray(y), where=jnp.asarray(mask(2, (1, 3, 3)))))
        check_grads(f, (jnp.asarray(x),), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


# Each compound against the sum of its terms called as the standalone losses (whose
# gradients come from other code: the region engine alone and plain autodiff).
TERMS_OF = {
    "dice_ce_loss": (dict(lambda_dice=0.7, lambda_ce=1.3),
                     lambda x, y, kw: 0.7 * sl.dice_loss(x, y, **kw)
                     + 1.3 * sl.cross_entropy(x, y, **_pixel_kwargs(kw))
                     if kw["activation"] == "softmax" else
                     0.7 * sl.dice_loss(x, y, **kw)
                     + 1.3 * sl.binary_cross_entropy(x, y, **_pixel_kwargs(kw))),
    "dice_focal_loss": (dict(gamma=1.5, alpha=0.25),
                        lambda x, y, kw: sl.dice_loss(x, y, **kw)
                        + sl.focal_loss(x, y, gamma=1.5, alpha=0.25, **_pixel_kwargs(kw))),
}


def _pixel_kwargs(kw):
    return {k: v for k, v in kw.items() if k in ("activation", "where", "class_weights")}


@pytest.mark.parametrize("name", sorted(TERMS_OF))
@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
@pytest.mark.parametrize("per_image", [False, True])
def test_fused_compound_equals_its_terms(name, act, per_image):
    x, y, _, _ = inputs(act, seed=11)
    own, terms = TERMS_OF[name]
    c = x.shape[-1]
    kw = dict(activation=act, per_image=per_image, where=jnp.asarray(mask(3)),
              class_weights=[1.0, 2.0, 0.5][:c])
    with jax.enable_x64(True):
        x, y = jnp.asarray(x), jnp.asarray(y)
        fused = jax.value_and_grad(lambda v: getattr(sl, name)(v, y, **own, **kw))
        parts = jax.value_and_grad(lambda v: terms(v, y, kw))
        # One compiled program for both.
        (value, grad), (expected, expected_grad) = jax.jit(lambda v: (fused(v), parts(v)))(x)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-9, atol=1e-12)


def test_fused_compound_is_one_custom_vjp():
    # One op carries both terms, so its backward is the only pass over the pixels.
    x, y, _, _ = inputs("softmax", seed=12)
    for name in ("dice_ce_loss", "dice_focal_loss", "combo_loss", "exp_log_loss"):
        loss = getattr(sl, name)
        jaxpr = str(jax.make_jaxpr(lambda v, loss=loss: loss(v, jnp.asarray(y)))(x))
        assert jaxpr.count("custom_vjp_call") == 1, name


@pytest.mark.parametrize("name,kw", [("dice_ce_loss", "lambda_ce"), ("dice_focal_loss",
                                                                     "lambda_focal"),
                                     ("exp_log_loss", "lambda_dice"),
                                     ("combo_loss", "lambda_dice"),
                                     ("unified_focal_loss", "lambda_focal_tversky")])
def test_negative_term_weights_rejected(name, kw):
    x, y, _, _ = inputs("softmax")
    with pytest.raises(ValueError, match=kw):  # raised while tracing, nothing compiled
        jax.jit(lambda x, y: getattr(sl, name)(x, y, **{kw: -1.0}))(
            jnp.asarray(x, jnp.float32), jnp.asarray(y))


# ----------------------------------------------------------------------------- combine


def test_combine_is_the_weighted_sum_and_jits():
    x, y, _, _ = inputs("softmax", seed=10)
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(jnp.where(mask(11), y, 255))
    fn = sl.combine({"dice": 1.0, "cross_entropy": 0.5, "focal": 0.25}, ignore_index=255,
                    per_loss={"focal": {"gamma": 1.0}})
    want = jax.jit(lambda x, y: sl.dice_loss(x, y, ignore_index=255)
                   + 0.5 * sl.cross_entropy(x, y, ignore_index=255)
                   + 0.25 * sl.focal_loss(x, y, ignore_index=255, gamma=1.0))(x, y)
    np.testing.assert_allclose(fn(x, y), want, rtol=1e-6)  # eagerly
    # Under jit: the value, its gradient and call-time keywords, which reach every member
    # and override the shared ones (one compiled program).
    jitted, grad, overridden = jax.jit(lambda x, y: (
        fn(x, y), jax.grad(fn)(x, y), fn(x, y, ignore_index=None, where=jnp.asarray(mask(11)))))(
        x, y)
    np.testing.assert_allclose(jitted, want, rtol=1e-6)
    assert np.all(np.asarray(grad)[np.asarray(y) == 255] == 0)
    np.testing.assert_allclose(overridden, want, rtol=1e-6)
    assert fn.weights == {"dice": 1.0, "cross_entropy": 0.5, "focal": 0.25}
    # Compounds combine too, and sigmoid members with an explicit activation.
    xb, yb, _, _ = inputs("sigmoid")
    xb, yb = jnp.asarray(xb, jnp.float32), jnp.asarray(yb)
    fb = sl.combine({"dice_ce": 1.0, "binary_cross_entropy": 2.0}, activation="sigmoid")
    got, expected = jax.jit(lambda x, y: (fb(x, y), sl.dice_ce_loss(x, y, activation="sigmoid")
                                          + 2 * sl.binary_cross_entropy(x, y)))(xb, yb)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_combine_errors():
    with pytest.raises(KeyError, match="dice"):
        sl.combine({"dcie": 1.0})
    with pytest.raises(TypeError, match=r"'cross_entropy'.*'smooth'"):
        sl.combine({"dice": 1.0, "cross_entropy": 1.0}, smooth=1.0)
    with pytest.raises(TypeError, match=r"'focal'.*'label_smoothing'"):
        sl.combine({"focal": 1.0}, per_loss={"focal": {"label_smoothing": 0.1}})
    with pytest.raises(KeyError, match="per_loss"):
        sl.combine({"focal": 1.0}, per_loss={"dice": {}})
    with pytest.raises(ValueError, match="activation"):
        sl.combine({"dice": 1.0, "binary_cross_entropy": 1.0})  # softmax vs sigmoid defaults
    with pytest.raises(ValueError, match="cross_entropy.*sigmoid"):
        sl.combine({"dice": 1.0, "cross_entropy": 1.0}, activation="sigmoid")
    with pytest.raises(ValueError, match="weights"):
        sl.combine({"dice": -1.0})
    with pytest.raises(ValueError, match="weights"):
        sl.combine({})
    with pytest.raises(TypeError, match="weight"):
        sl.combine({"dice": "1"})
    fn = sl.combine({"dice": 1.0, "cross_entropy": 1.0})
    x, y, _, _ = inputs("softmax")
    with pytest.raises(TypeError, match=r"'cross_entropy'.*'per_image'"):  # while tracing
        jax.jit(lambda x, y: fn(x, y, per_image=True))(jnp.asarray(x, jnp.float32),
                                                       jnp.asarray(y))
