"""Tests of ``mcc_loss``, ``generalized_wasserstein_dice_loss`` and ``unified_focal_loss``.

Expected values come from the float64 NumPy references of ``reference.py``, written
from the papers (Abhishek & Hamarneh 2021; Fidon et al. 2017; Yeung et al. 2022),
independently of ``segloss_jax``. The generic contract (jit, vmap, extreme logits,
low precision, masks, retracing, sharding) is checked for every registered loss by
``test_contract.py`` and ``test_distributed.py``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import segloss_jax as sl

SHAPE = (3, 4, 5)  # [B, H, W]
# Distances between 3 classes: classes 1 and 2 are close, both far from the background.
M3 = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [1.0, 0.5, 0.0]])


def make_case(seed, *, num_classes=3, activation="softmax", dense=False, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(*SHAPE, num_classes)) * scale
    if activation is None:
        logits = rng.uniform(0.02, 0.98, size=logits.shape)
    if dense:
        labels = rng.uniform(size=logits.shape)
        if activation != "sigmoid" and num_classes > 1:
            labels = labels / labels.sum(-1, keepdims=True)
    else:
        labels = rng.integers(0, max(num_classes, 2), size=SHAPE)
        labels[0, 0, :2] = [0, 1]  # every image has background and class 1
    return logits, labels


def mask():
    where = np.random.default_rng(7).uniform(size=SHAPE) > 0.3
    where[:, 0, 0] = True
    return where


def jitted(fn, **kwargs):
    """``fn(logits, labels, **kwargs)`` under ``jit``: one compilation instead of many
    eager ones (the keywords are constants of it)."""
    return jax.jit(lambda x, y: fn(x, y, **kwargs))


def call(fn, logits, labels, **kwargs):
    return jitted(fn, **kwargs)(jnp.asarray(logits), jnp.asarray(labels))


REGION_CONFIGS = [
    {},
    {"per_image": True},
    {"include_background": False, "reduction": "none"},
    {"classes": "present", "per_image": True, "reduction": "none"},
    {"reduction": "sum", "per_image": True},
    {"smooth": (0.5, 1e-3)},
    {"class_weights": np.array([0.2, 1.0, 3.0]), "per_image": True},
    {"ignore_index": 2, "per_image": True, "reduction": "none"},
    {"where": "mask", "classes": "present"},
]


def materialise(config):
    return {**config, "where": mask()} if config.get("where") == "mask" else dict(config)


# ---------------------------------------------------------------------------------- MCC


def test_mcc_values():
    logits, labels = make_case(0)
    labels[1] = np.where(labels[1] == 2, 1, labels[1])  # class 2 absent from image 1
    with jax.enable_x64(True):
        for config in REGION_CONFIGS:
            kwargs = materialise(config)
            got = call(sl.mcc_loss, logits, labels, **kwargs)
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(got, ref.mcc_loss(logits, labels, **kwargs), rtol=1e-10,
                                       atol=1e-12, err_msg=str(config))


@pytest.mark.parametrize("activation", ["sigmoid", None])
def test_mcc_values_sigmoid_and_probabilities(activation):
    with jax.enable_x64(True):
        for num_classes, dense in [(1, False), (3, True)]:
            logits, labels = make_case(1, num_classes=num_classes, activation=activation,
                                       dense=dense)
            kwargs = {"activation": activation, "per_image": True, "reduction": "none"}
            np.testing.assert_allclose(call(sl.mcc_loss, logits, labels, **kwargs),
                                       ref.mcc_loss(logits, labels, **kwargs), rtol=1e-10)


def test_mcc_by_hand():
    # One image, C == 1, probabilities p = [0.8, 0.4, 0.1], g = [1, 0, 0]:
    # tp = 0.8, fp = 0.5, fn = 0.2, tn = 0.6 + 0.9 = 1.5.
    probs = jnp.array([[[0.8], [0.4], [0.1]]])
    labels = jnp.array([[1, 0, 0]])
    mcc = (0.8 * 1.5 - 0.5 * 0.2) / np.sqrt(1.3 * 1.0 * 2.0 * 1.7)
    np.testing.assert_allclose(sl.mcc_loss(probs, labels, activation=None, smooth=0.0),
                               1 - mcc, rtol=1e-6)
    # A prediction anti-correlated with the target: MCC = -1, loss 2.
    flipped = sl.mcc_loss(jnp.array([[[0.0], [1.0]]]), jnp.array([[1, 0]]), activation=None,
                          smooth=0.0)
    np.testing.assert_allclose(flipped, 2.0, rtol=1e-6)
    # The region engine's fused backward.
    jaxpr = jax.make_jaxpr(lambda p: sl.mcc_loss(p, labels, activation=None))(probs)
    assert "custom_vjp_call" in str(jaxpr)


def test_mcc_perfect_units_are_zero():
    """fp = fn = 0 scores 0, with zero gradient, also where tp = 0 or tn = 0 (the product
    in the denominator vanishes there) and for units without valid pixels."""
    labels = np.zeros(SHAPE, np.int64)
    labels[0, :2] = 1  # image 0: background and class 1; images 1, 2: background only
    probs = jnp.asarray(ref.one_hot(labels, 3))  # exact: class 2 absent and never predicted
    where = np.ones(SHAPE, bool)
    where[2] = False  # an image without valid pixels
    for smooth in ((0.0, 1e-5), 0.0, 1.0):
        kwargs = {"activation": None, "per_image": True, "reduction": "none", "smooth": smooth,
                  "where": jnp.asarray(where)}
        units = call(sl.mcc_loss, probs, labels, **kwargs)
        np.testing.assert_array_equal(units, np.zeros((3, 3)))
        grad = jax.jit(jax.grad(lambda p, k=kwargs: jnp.sum(sl.mcc_loss(p, labels, **k))))(probs)
        np.testing.assert_array_equal(grad, np.zeros(probs.shape))
    # One false positive of class 2 in image 1: that unit is no longer perfect.
    wrong = probs.at[1, 0, 0].set(jnp.array([0.0, 0.0, 1.0]))
    units = call(sl.mcc_loss, wrong, labels, activation=None, per_image=True, reduction="none")
    np.testing.assert_allclose(units, ref.mcc_loss(np.asarray(wrong), labels, activation=None,
                                                   per_image=True, reduction="none"), rtol=1e-6)
    assert units[1, 0] > 0 and units[1, 2] > 0.99  # class 2 absent but predicted: loss 1
    assert units[0, 0] == units[0, 1] == units[2, 0] == 0


# --------------------------------------------------------------- generalized Wasserstein


@pytest.mark.parametrize("weighting", ["default", "GDL"])
def test_gwdl_values_per_image(weighting):
    logits, labels = make_case(2)
    labels[2] = np.where(labels[2] == 2, 1, labels[2])  # class 2 absent from image 2
    distance = np.array([[0.0, 2.0, 3.0], [2.0, 0.0, 0.5], [3.0, 0.5, 0.0]])  # max 3
    configs = [{}, {"reduction": "none"}, {"reduction": "sum"}, {"smooth": (0.5, 1e-3)},
               {"ignore_index": 2, "reduction": "none"}, {"where": "mask", "reduction": "none"}]
    with jax.enable_x64(True):
        for config in configs:
            kwargs = {**materialise(config), "weighting": weighting}
            got = call(sl.generalized_wasserstein_dice_loss, logits, labels,
                       distance_matrix=distance, **kwargs)
            want = ref.generalized_wasserstein_dice_loss(logits, labels, distance, **kwargs)
            np.testing.assert_allclose(got, want, rtol=1e-10, err_msg=str(config))
        # Batch > 1 is image by image: each image alone gives its entry of "none".
        fn = jitted(sl.generalized_wasserstein_dice_loss, reduction="none",
                    distance_matrix=distance, weighting=weighting)
        units = fn(jnp.asarray(logits), jnp.asarray(labels))
        assert units.shape == (3,)
        for b in range(3):
            alone = fn(jnp.asarray(logits[b:b + 1]), jnp.asarray(labels[b:b + 1]))
            np.testing.assert_allclose(alone[0], units[b], rtol=1e-12)


def test_gwdl_distance_matrix_forms_and_scale():
    logits, labels = make_case(3)
    x = jnp.asarray(logits, jnp.float32)
    want = call(sl.generalized_wasserstein_dice_loss, x, labels, distance_matrix=jnp.asarray(M3))
    forms = [M3.tolist(), tuple(map(tuple, M3)), M3.astype(np.float32), 4 * M3,
             jnp.asarray(2 * M3)]
    for form in forms:  # M / max(M): scaling the matrix changes nothing
        got = call(sl.generalized_wasserstein_dice_loss, x, labels, distance_matrix=form)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # Integer distances, and a matrix traced under jit (only its shape is checked then).
    line = np.abs(np.subtract.outer(np.arange(3), np.arange(3)))
    concrete = call(sl.generalized_wasserstein_dice_loss, x, labels, distance_matrix=line)
    traced = jax.jit(lambda m: sl.generalized_wasserstein_dice_loss(x, labels,
                                                                    distance_matrix=m))(line)
    np.testing.assert_allclose(traced, concrete, rtol=1e-6)
    np.testing.assert_allclose(concrete, ref.generalized_wasserstein_dice_loss(
        logits, labels, line), rtol=1e-5)


def test_gwdl_distances_decide_the_cost_of_a_mistake():
    # Each image: one pixel of class 1 predicted as class 2 (close) or as class 0 (far).
    labels = jnp.array([[1, 1, 2, 0]])
    close = jnp.array([[[0.0, 9.0, 0.0], [0.0, 0.0, 9.0], [0.0, 0.0, 9.0], [9.0, 0.0, 0.0]]])
    far = jnp.array([[[0.0, 9.0, 0.0], [9.0, 0.0, 0.0], [0.0, 0.0, 9.0], [9.0, 0.0, 0.0]]])
    kwargs = {"distance_matrix": M3}
    assert (sl.generalized_wasserstein_dice_loss(close, labels, **kwargs)
            < sl.generalized_wasserstein_dice_loss(far, labels, **kwargs))
    # With M = 1 - I and one-hot predictions, δ counts the wrong pixels: 2TP = 2·2
    # (two right foreground pixels), Σδ = 1, loss 1 - 4/5 (smooth 0).
    hard = 60.0 * jnp.asarray(ref.one_hot(np.array([[1, 0, 2, 0]]), 3))
    loss = sl.generalized_wasserstein_dice_loss(hard, labels, smooth=0.0,
                                                distance_matrix=1 - np.eye(3))
    np.testing.assert_allclose(loss, 1 - 4 / 5, rtol=1e-6)


# ---------------------------------------------------------------------- unified focal


UFL_CONFIGS = [
    {},
    {"lambda_focal": 0.2, "lambda_focal_tversky": 0.8, "delta": 0.7, "gamma": 0.2,
     "per_image": True},
    {"include_background": False, "smooth": (0.5, 1e-3)},
    {"classes": "present", "per_image": True, "gamma": 1.0},
    {"class_weights": np.array([0.2, 1.0, 3.0]), "per_image": True, "gamma": 0.0},
    {"ignore_index": 2, "delta": 0.0, "lambda_focal": 1.0, "lambda_focal_tversky": 0.0},
    {"where": "mask", "delta": 1.0, "lambda_focal": 0.0, "lambda_focal_tversky": 1.0},
]


def test_unified_focal_values_softmax():
    logits, labels = make_case(4)
    labels[1] = np.where(labels[1] == 2, 0, labels[1])
    with jax.enable_x64(True):
        for config in UFL_CONFIGS:
            kwargs = materialise(config)
            got = call(sl.unified_focal_loss, logits, labels, **kwargs)
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(got, ref.unified_focal_loss(logits, labels, **kwargs),
                                       rtol=1e-10, err_msg=str(config))


@pytest.mark.parametrize("activation", ["sigmoid", None])
def test_unified_focal_values_binary_and_probabilities(activation):
    configs = [{"per_image": True, "include_background": False},
               {"class_weights": "some", "where": "mask"}]
    with jax.enable_x64(True):
        cases = [(1, False), (1, True)] + ([(3, True)] if activation is None else [])
        for num_classes, dense in cases:
            logits, labels = make_case(5, num_classes=num_classes, activation=activation,
                                       dense=dense)
            for config in configs:
                kwargs = {**materialise(config), "activation": activation}
                if "class_weights" in kwargs:  # a binary [w] weighs the foreground
                    kwargs["class_weights"] = [2.0] if num_classes == 1 else [0.5, 1.0, 2.0]
                got = call(sl.unified_focal_loss, logits, labels, **kwargs)
                want = ref.unified_focal_loss(logits, labels, **kwargs)
                np.testing.assert_allclose(got, want, rtol=1e-10,
                                           err_msg=f"{num_classes} {dense} {config}")


def test_unified_focal_sigmoid_is_softmax_over_zero_and_logit():
    """σ(x) = softmax([0, x])₁: the binary loss equals the two-class one, values and
    gradients; a binary class weight [w] is the two-class [1, w]."""
    logits, labels = make_case(6, num_classes=1)
    with jax.enable_x64(True):
        x = jnp.asarray(logits)
        kwargs = {"per_image": True, "where": jnp.asarray(mask()), "delta": 0.7}

        def binary(x):
            return sl.unified_focal_loss(x, labels, activation="sigmoid", class_weights=[2.0],
                                         **kwargs)

        def two_class(x):
            return sl.unified_focal_loss(jnp.concatenate([jnp.zeros_like(x), x], -1), labels,
                                         class_weights=[1.0, 2.0], **kwargs)

        value, grad = jax.jit(jax.value_and_grad(binary))(x)
        want_value, want_grad = jax.jit(jax.value_and_grad(two_class))(x)
        np.testing.assert_allclose(value, want_value, rtol=1e-12)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------- all three losses


LOSSES = {
    "mcc": lambda x, y, **k: sl.mcc_loss(x, y, **k),
    "gwdl": lambda x, y, **k: sl.generalized_wasserstein_dice_loss(x, y, distance_matrix=M3,
                                                                   **k),
    "gwdl_gdl": lambda x, y, **k: sl.generalized_wasserstein_dice_loss(
        x, y, distance_matrix=M3, weighting="GDL", **k),
    "unified_focal": lambda x, y, **k: sl.unified_focal_loss(x, y, **k),
}


@pytest.mark.parametrize("name", LOSSES)
def test_check_grads(name):
    logits, labels = make_case(8)
    with jax.enable_x64(True):
        configs = [{"ignore_index": 2, "where": jnp.asarray(mask())}]
        if name in ("mcc", "unified_focal"):
            configs.append({"per_image": True, "include_background": False,
                            "classes": "present"})
        for kwargs in configs:
            check_grads(jax.jit(lambda x, k=kwargs: LOSSES[name](x, labels, **k)),
                        (jnp.asarray(logits),), order=1, modes=("rev",))
    if name == "unified_focal":  # binary, through the two-channel view
        logits, labels = make_case(9, num_classes=1)
        with jax.enable_x64(True):
            check_grads(jax.jit(lambda x: sl.unified_focal_loss(x, labels, activation="sigmoid")),
                        (jnp.asarray(logits),), order=1, modes=("rev",))


@pytest.mark.parametrize("name", LOSSES)
def test_perfect_prediction_is_near_zero(name):
    labels = np.random.default_rng(10).integers(0, 3, size=SHAPE)
    with jax.enable_x64(True):
        logits = jnp.asarray(ref.one_hot(labels, 3) * 40.0 - 20.0)
        for per_image in (False, True):
            kwargs = {"per_image": per_image} if name in ("mcc", "unified_focal") else {}
            assert call(LOSSES[name], logits, labels, **kwargs) < 1e-8, per_image


@functools.partial(jax.jit, static_argnames="per_image")
def all_losses(x, labels, per_image):
    return (sl.mcc_loss(x, labels, per_image=per_image, reduction="none"),
            *(sl.generalized_wasserstein_dice_loss(x, labels, distance_matrix=M3, weighting=w,
                                                   reduction="none") for w in ("default", "GDL")),
            sl.unified_focal_loss(x, labels, per_image=per_image))


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([0.1, 2.0, 8.0]),
       per_image=st.booleans(), absent=st.booleans())
def test_property_bounds(seed, scale, per_image, absent):
    """MCC loss in [0, 2] (|MCC| ≤ 1 for non-negative counts), generalized Wasserstein
    Dice in [0, 1] (2TP ≤ denominator), unified focal ≥ 0; every one equals its reference."""
    logits, labels = make_case(seed, scale=scale)
    if absent:
        labels[:, 1:] = np.where(labels[:, 1:] == 2, 0, labels[:, 1:])  # rare class 2
    mcc, gwdl, gwdl_gdl, ufl = all_losses(jnp.asarray(logits, jnp.float32), jnp.asarray(labels),
                                          per_image)
    assert np.all(mcc >= -1e-6) and np.all(mcc <= 2 + 1e-6)
    np.testing.assert_allclose(mcc, ref.mcc_loss(logits, labels, per_image=per_image,
                                                 reduction="none"), rtol=1e-4, atol=1e-5)
    for weighting, got in (("default", gwdl), ("GDL", gwdl_gdl)):
        assert np.all(got >= -1e-6) and np.all(got <= 1 + 1e-6)
        np.testing.assert_allclose(got, ref.generalized_wasserstein_dice_loss(
            logits, labels, M3, weighting=weighting, reduction="none"), rtol=1e-4, atol=1e-6)
    assert ufl >= 0
    np.testing.assert_allclose(ufl, ref.unified_focal_loss(logits, labels, per_image=per_image),
                               rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- bad input


def test_gwdl_bad_input():
    logits, labels = make_case(11)
    x = jnp.asarray(logits, jnp.float32)

    def gwdl(**kwargs):
        kwargs.setdefault("distance_matrix", M3)
        return sl.generalized_wasserstein_dice_loss(x, labels, **kwargs)

    with pytest.raises(ValueError, match=r"`distance_matrix` must be a square.*\(2, 3\)"):
        gwdl(distance_matrix=M3[:2])
    with pytest.raises(ValueError, match=r"`distance_matrix` has shape \(4, 4\).*C = 3"):
        gwdl(distance_matrix=np.ones((4, 4)) - np.eye(4))
    with pytest.raises(ValueError, match="`distance_matrix` must have a zero diagonal"):
        gwdl(distance_matrix=M3 + np.eye(3))
    with pytest.raises(ValueError, match="`distance_matrix` must be non-negative"):
        gwdl(distance_matrix=-M3)
    with pytest.raises(ValueError, match="`distance_matrix` must have a positive entry"):
        gwdl(distance_matrix=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="`distance_matrix` must be finite"):
        gwdl(distance_matrix=np.where(M3 == 0.5, np.nan, M3))
    with pytest.raises(TypeError, match="distance_matrix"):
        gwdl(distance_matrix=np.eye(3, dtype=bool))
    with pytest.raises(ValueError, match="weighting"):
        gwdl(weighting="gdl")
    with pytest.raises(ValueError, match="integer `labels`"):
        sl.generalized_wasserstein_dice_loss(x, jax.nn.one_hot(labels, 3), distance_matrix=M3)
    with pytest.raises(ValueError, match="activation"):
        gwdl(activation="sigmoid")
    with pytest.raises(TypeError, match="per_image"):
        gwdl(per_image=True)
    with pytest.raises(TypeError, match="distance_matrix"):
        sl.generalized_wasserstein_dice_loss(x, labels)
    # Traced under jit, the shape is still checked.
    with pytest.raises(ValueError, match="distance_matrix"):
        jax.jit(lambda m: gwdl(distance_matrix=m))(jnp.ones((2, 2)))


def test_mcc_and_unified_focal_bad_input():
    logits, labels = make_case(12)
    x = jnp.asarray(logits, jnp.float32)
    for name, value in (("delta", 1.2), ("delta", -0.5), ("gamma", -0.5), ("gamma", 1.5)):
        with pytest.raises(ValueError, match=f"`{name}` must lie in"):
            sl.unified_focal_loss(x, labels, **{name: value})
    for name in ("lambda_focal", "lambda_focal_tversky"):
        with pytest.raises(ValueError, match=f"`{name}` must be non-negative"):
            sl.unified_focal_loss(x, labels, **{name: -0.1})
    with pytest.raises(ValueError, match="C == 1"):
        sl.unified_focal_loss(x, labels, activation="sigmoid")
    with pytest.raises(ValueError, match="class_weights"):
        sl.unified_focal_loss(x[..., :1], labels % 2, activation="sigmoid",
                              class_weights=[1.0, 2.0])
    with pytest.raises(TypeError, match="reduction"):
        sl.unified_focal_loss(x, labels, reduction="none")
    with pytest.raises(ValueError, match="smooth"):
        sl.mcc_loss(x, labels, smooth=(0.0, -1.0))
    with pytest.raises(ValueError, match="classes"):
        sl.mcc_loss(x, labels, classes="some")
