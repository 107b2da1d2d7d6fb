"""``pixel_weights`` and ``normalize_weights`` on the pixel-wise losses and the compounds.

One parametrised file for the keyword every pixel-wise loss takes (the registry-wide
contract grid is not widened): the reductions against the float64 reference
``reference.weighted_pixel_reduce`` applied to each loss's own unweighted
``reduction="none"`` terms (themselves checked against their references elsewhere),
cross-entropy and binary cross-entropy against the formulas directly, PyTorch's
weighted forms where torch is installed, the compounds against their terms, bad
weights, and ``axis_name`` on the simulated devices with unevenly ignored pixels.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.experimental import checkify
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from jax.test_util import check_grads

import segloss_jax as sl

SHAPE = (2, 5, 4)
IGNORE = 255


def _case(c, seed=0):
    """Logits, labels with ignored pixels, and weights in [0, 3) (some exactly 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.5, size=(*SHAPE, c))
    labels = rng.integers(0, max(c, 2), size=SHAPE)
    labels[0, 0, :2] = IGNORE
    w = rng.uniform(0, 3, size=SHAPE)
    w[1, 2, 0] = 0.0
    return x, labels, w


# Every pixel-wise loss with the activation and keywords it is checked with.
LOSSES = [
    ("cross_entropy", "softmax", {}),
    ("cross_entropy", "softmax", {"label_smoothing": 0.1, "class_weights": (1.0, 2.0, 0.5)}),
    ("binary_cross_entropy", "sigmoid", {"pos_weight": 2.0}),
    ("weighted_cross_entropy", "sigmoid", {"beta": 2.0}),
    ("balanced_cross_entropy", "sigmoid", {}),
    ("focal_loss", "softmax", {}),
    ("focal_loss", "sigmoid", {"alpha": 0.25}),
    ("distance_weighted_cross_entropy", "softmax", {}),
    ("shape_aware_loss", "sigmoid", {}),
    ("poly_cross_entropy", "softmax", {}),
    ("poly_focal_loss", "sigmoid", {}),
    ("ssim_loss", "softmax", {"window_size": 3}),
    ("nacl_loss", "softmax", {}),
]


@functools.cache
def _reductions(name, act, kwargs):
    """One compiled program per loss: its unweighted per-pixel terms and every weighted
    reduction."""
    fn = functools.partial(getattr(sl, name), activation=act, ignore_index=IGNORE,
                           **dict(kwargs))

    def run(x, labels, w):
        return (fn(x, labels, reduction="none"),
                fn(x, labels, pixel_weights=w, reduction="none"),
                fn(x, labels, pixel_weights=w, reduction="sum"),
                fn(x, labels, pixel_weights=w),
                fn(x, labels, pixel_weights=w, normalize_weights=True))

    return jax.jit(run)


@pytest.mark.parametrize("name,act,kwargs", [pytest.param(n, a, k, id=f"{n}-{a}-{len(k)}")
                                             for n, a, k in LOSSES])
def test_reductions_follow_the_weighted_formulas(name, act, kwargs):
    c = 3 if act == "softmax" else 2
    x, labels, w = _case(c)
    with jax.enable_x64(True):
        plain, none, total, mean, normalized = _reductions(name, act, tuple(kwargs.items()))(
            jnp.asarray(x), jnp.asarray(labels), jnp.asarray(w))
    plain, valid = np.asarray(plain), labels != IGNORE
    for reduction, got in (("none", none), ("sum", total), ("mean", mean)):
        np.testing.assert_allclose(got, ref.weighted_pixel_reduce(plain, valid, w, reduction),
                                   rtol=1e-12, atol=1e-15, err_msg=reduction)
    np.testing.assert_allclose(normalized, ref.weighted_pixel_reduce(plain, valid, w,
                                                                     normalize=True), rtol=1e-12)


def test_cross_entropy_against_the_formula():
    """Σ_valid w·CE / n_valid and / Σ_valid w, with broadcastable weights [H, W]."""
    x, labels, _ = _case(3, seed=1)
    w = np.random.default_rng(2).uniform(0.5, 2.0, size=SHAPE[1:])
    valid = labels != IGNORE
    per_pixel = ref.ce(ref.softmax(x), ref.one_hot(np.where(valid, labels, 0), 3))
    wb = np.broadcast_to(w, SHAPE)
    for normalize, den in ((False, valid.sum()), (True, wb[valid].sum())):
        got = _f64(sl.cross_entropy, x, labels, pixel_weights=w, ignore_index=IGNORE,
                   normalize_weights=normalize)
        np.testing.assert_allclose(got, (wb * per_pixel)[valid].sum() / den, rtol=1e-12)


def test_binary_cross_entropy_averages_over_channels():
    """Sigmoid: mean over valid elements; normalize divides by C·Σ_valid w."""
    x, labels, w = _case(1, seed=3)
    labels = np.where(labels == IGNORE, 0, labels)
    g = ref.one_hot(labels, 1)
    per_element = ref.bce(ref.sigmoid(x), g)
    rng = np.random.default_rng(4)
    x3, g3 = rng.normal(size=(*SHAPE, 3)) * 2, (rng.random((*SHAPE, 3)) > 0.5) * 1.0
    per_element3 = ref.bce(ref.sigmoid(x3), g3)
    np.testing.assert_allclose(_f64(sl.binary_cross_entropy, x, labels, pixel_weights=w),
                               (w[..., None] * per_element).mean(), rtol=1e-12)
    np.testing.assert_allclose(
        _f64(sl.binary_cross_entropy, x3, g3, pixel_weights=w, normalize_weights=True),
        (w[..., None] * per_element3).sum() / (3 * w.sum()), rtol=1e-12)


def test_normalize_with_zero_weights_is_zero_with_zero_gradient():
    x, labels, _ = _case(3)
    zero = np.zeros(SHAPE)
    value, grad = jax.jit(jax.value_and_grad(lambda x: sl.cross_entropy(
        x, jnp.asarray(labels), ignore_index=IGNORE, pixel_weights=zero,
        normalize_weights=True)))(jnp.asarray(x, jnp.float32))
    assert value == 0.0
    assert np.all(np.asarray(grad) == 0)


def test_weights_carry_no_gradient_and_nan_weights_at_ignored_pixels_do_not_leak():
    x, labels, w = _case(3)
    w = np.where(labels == IGNORE, np.nan, w)
    g_w = jax.jit(jax.grad(lambda w: sl.cross_entropy(jnp.asarray(x), jnp.asarray(labels),
                                              ignore_index=IGNORE, pixel_weights=w)))(
        jnp.asarray(w, jnp.float32))
    assert np.all(np.asarray(g_w) == 0)
    value, g_x = jax.jit(jax.value_and_grad(lambda x: sl.dice_ce_loss(
        x, jnp.asarray(labels), ignore_index=IGNORE, pixel_weights=jnp.asarray(w))))(
        jnp.asarray(x, jnp.float32))
    assert np.isfinite(value) and np.all(np.isfinite(np.asarray(g_x)))


def test_gradients_match_finite_differences():
    x, labels, w = _case(3)
    with jax.enable_x64(True):
        for fn in (sl.cross_entropy, sl.dice_focal_loss):
            check_grads(jax.jit(lambda x, fn=fn: fn(x, jnp.asarray(labels), ignore_index=IGNORE,
                                                    pixel_weights=jnp.asarray(w),
                                                    normalize_weights=True)),
                        (jnp.asarray(x),), order=1, modes=["rev"])


# --------------------------------------------------------------------------- compounds


def _f64(fn, *args, **kwargs):
    with jax.enable_x64(True):
        return np.asarray(jax.jit(lambda *a: fn(*a, **kwargs))(*map(jnp.asarray, args)))


@pytest.mark.parametrize("compound,term,act,kw", [
    ("dice_ce_loss", "cross_entropy", "softmax", {}),
    ("dice_ce_loss", "binary_cross_entropy", "sigmoid", {}),
    ("dice_focal_loss", "focal_loss", "softmax", {"gamma": 2.0}),
])
def test_compound_is_dice_plus_the_weighted_term(compound, term, act, kw):
    """Value and gradient: the compound's pixel term is the standalone weighted loss."""
    c = 3 if act == "softmax" else 2
    x, labels, w = _case(c, seed=5)
    shared = {"activation": act, "ignore_index": IGNORE}

    def both(x, labels, w, normalize):
        pw = {"pixel_weights": w, "normalize_weights": normalize}
        whole = getattr(sl, compound)(x, labels, **shared, **kw, **pw)
        parts = sl.dice_loss(x, labels, **shared) + getattr(sl, term)(x, labels, **shared,
                                                                      **kw, **pw)
        return whole, parts

    def stacked(x, normalize):
        return jnp.stack(both(x, jnp.asarray(labels), jnp.asarray(w), normalize))

    with jax.enable_x64(True):
        # One compiled program for both normalize settings.
        results = jax.jit(lambda x: [(stacked(x, n), jax.jacrev(stacked)(x, n))
                                     for n in (False, True)])(jnp.asarray(x))
        for values, grads in results:
            np.testing.assert_allclose(values[0], values[1], rtol=1e-12)
            np.testing.assert_allclose(grads[0], grads[1], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name,act", [("combo_loss", "softmax"), ("exp_log_loss", "sigmoid"),
                                      ("unified_focal_loss", "sigmoid")])
def test_other_compounds_scale_their_pixel_term(name, act):
    """Constant weights a: the pixel term is a times the unweighted one (so f(a) − f(1) is
    (a − 1)(f(1) − f(0))), and with normalize_weights it is the unweighted one."""
    c = 3 if act == "softmax" else 1
    x, labels, _ = _case(c, seed=6)
    labels = np.where(labels == IGNORE, IGNORE, labels % max(c, 2))

    def values(x, labels):
        fn = functools.partial(getattr(sl, name), x, labels, activation=act,
                               ignore_index=IGNORE)
        return [fn()] + [fn(pixel_weights=jnp.full(SHAPE, a)) for a in (0.0, 1.0, 3.0)] + [
            fn(pixel_weights=jnp.full(SHAPE, 3.0), normalize_weights=True)]

    unweighted, f0, f1, f3, f3_normalized = _f64(values, x, labels)
    np.testing.assert_allclose(f1, unweighted, rtol=1e-12)
    np.testing.assert_allclose(f3 - f1, 2 * (f1 - f0), rtol=1e-9)
    assert f1 != f0
    np.testing.assert_allclose(f3_normalized, unweighted, rtol=1e-12)


# --------------------------------------------------------------------------- peers


def test_torch_weighted_forms():
    """``(F.cross_entropy(reduction="none") * w).mean()`` and
    ``F.binary_cross_entropy_with_logits(weight=w)``, nothing ignored."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    x = rng.normal(size=(*SHAPE, 4)) * 2
    labels = rng.integers(0, 4, size=SHAPE)
    w = rng.uniform(0, 2, size=SHAPE)
    tx, tw = torch.tensor(np.moveaxis(x, -1, 1)), torch.tensor(w)
    want = (F.cross_entropy(tx, torch.tensor(labels), reduction="none") * tw).mean()
    np.testing.assert_allclose(_f64(sl.cross_entropy, x, labels, pixel_weights=w),
                               want.item(), rtol=1e-12)
    g = (rng.random(x.shape) > 0.5) * 1.0
    want = F.binary_cross_entropy_with_logits(tx, torch.tensor(np.moveaxis(g, -1, 1)),
                                              weight=tw[:, None])
    np.testing.assert_allclose(_f64(sl.binary_cross_entropy, x, g, pixel_weights=w),
                               want.item(), rtol=1e-12)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("weights,exc,match", [
    (np.ones(SHAPE, bool), TypeError, "a bool map is a mask"),
    (np.ones((*SHAPE, 3)), ValueError, r"does not broadcast to the pixel shape"),
    (np.ones((3, 5, 4)), ValueError, r"has shape \(3, 5, 4\)"),
    (-np.ones(SHAPE), ValueError, "must be non-negative"),
])
def test_bad_weights(weights, exc, match):
    # Checked in Python when the call is traced (the weights are host values): under jit
    # the check raises before anything is compiled (called eagerly, the loss would compile
    # its operations one by one before reaching it).
    x, labels, _ = _case(3)
    with pytest.raises(exc, match=match):
        jax.jit(lambda x, y: sl.cross_entropy(x, y, pixel_weights=weights))(
            jnp.asarray(x), jnp.asarray(labels))


def test_bad_normalize_weights():
    x, labels, w = _case(3)
    with pytest.raises(TypeError, match="normalize_weights"):  # raised while tracing
        jax.jit(lambda x, y: sl.focal_loss(x, y, pixel_weights=w, normalize_weights="yes"))(
            jnp.asarray(x), jnp.asarray(labels))


def test_negative_weights_reported_under_checkify():
    x, labels, w = _case(3)
    checked = checkify.checkify(jax.jit(lambda x, y, w: sl.dice_ce_loss(x, y, pixel_weights=w)),
                                errors=checkify.user_checks)
    labels = np.where(labels == IGNORE, 0, labels)
    err, _ = checked(jnp.asarray(x), jnp.asarray(labels), jnp.asarray(w))
    err.throw()
    err, _ = checked(jnp.asarray(x), jnp.asarray(labels), jnp.asarray(w - 1))
    with pytest.raises(checkify.JaxRuntimeError, match="pixel_weights"):
        err.throw()


# --------------------------------------------------------------------------- axis_name

DEVICES = 8


@pytest.mark.parametrize("name,act,normalize", [("cross_entropy", "softmax", False),
                                                ("binary_cross_entropy", "sigmoid", True),
                                                ("topk_cross_entropy", "softmax", True),
                                                ("dice_ce_loss", "softmax", True)])
def test_axis_name_gives_the_single_device_value_and_gradient(name, act, normalize):
    if jax.device_count() < DEVICES:
        pytest.skip(f"needs {DEVICES} devices")
    mesh = Mesh(np.array(jax.devices()[:DEVICES]), ("data",))
    rng = np.random.default_rng(8)
    c = 3 if act == "softmax" else 1
    x = jnp.asarray(rng.normal(size=(DEVICES * 2, 4, 3, c)) * 2, jnp.float32)
    labels = rng.integers(0, max(c, 2), size=(DEVICES * 2, 4, 3))
    labels[: DEVICES // 2].reshape(DEVICES // 2, -1)[:, : 5] = IGNORE  # uneven shards
    labels[3] = IGNORE  # one image with nothing valid
    labels, w = jnp.asarray(labels), jnp.asarray(rng.uniform(0, 2, size=labels.shape),
                                                 jnp.float32)
    fn = functools.partial(getattr(sl, name), activation=act, ignore_index=IGNORE,
                           normalize_weights=normalize)

    def global_loss(x):
        return jax.shard_map(lambda x, y, w: fn(x, y, pixel_weights=w, axis_name="data"),
                             mesh=mesh, in_specs=(P("data"),) * 3, out_specs=P())(x, labels, w)

    # One compiled program: the single-device loss and the sharded one.
    (want, want_grad), (got, grad) = jax.jit(lambda x: (
        jax.value_and_grad(lambda x: fn(x, labels, pixel_weights=w))(x),
        jax.value_and_grad(global_loss)(x)))(x)
    np.testing.assert_allclose(got, want, rtol=2e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=2e-5, atol=1e-7)
