"""Tests of the region losses (Dice, Jaccard, Tversky families).

Expected values come from ``reference.region_loss``, written from the formulas and
the papers, independently of ``segloss_jax``. It is generic in the array module
``xp``: with NumPy in float64 it gives the golden values; with ``jax.numpy`` it is
the *plain formula* whose autodiff gradient the shared ``custom_vjp`` backward of
the region engine (``engine.py``) must reproduce. Those engine checks stay here,
parametrised over the region losses, beside the per-loss cases they use.
"""

from __future__ import annotations

import itertools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.test_util import check_grads

import segloss_jax as sl

LOSSES = ref.REGION_LOSSES


# --------------------------------------------------------------------------------------
# Fixtures.
# --------------------------------------------------------------------------------------


def hyper_kwargs(name):
    """Non-default hyperparameters, so that they are exercised."""
    return {
        "dice_loss": {},
        "tversky_loss": {"alpha": 0.4, "beta": 0.9},
        "focal_tversky_loss": {"alpha": 0.4, "beta": 0.9, "gamma": 1.5},
        "sensitivity_specificity_loss": {"r": 0.3},
        "generalized_dice_loss": {"weighting": "simple"},
    }.get(name, {})


# One shape for (almost) every test: eager JAX compiles each primitive once per shape.
SHAPE = (3, 4, 5)


def make_case(seed, *, batch=SHAPE[0], spatial=SHAPE[1:], num_classes=3, activation="softmax",
              dense=False, scale=2.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(batch, *spatial, num_classes)) * scale
    if activation is None:
        logits = rng.uniform(0.02, 0.98, size=logits.shape)
    if dense:
        labels = rng.uniform(size=logits.shape)
        if activation == "softmax":
            labels = labels / labels.sum(-1, keepdims=True)
    else:
        labels = rng.integers(0, max(num_classes, 2), size=(batch, *spatial))
    return logits, labels


def call(name, logits, labels, **kwargs):
    return getattr(sl, name)(jnp.asarray(logits), jnp.asarray(labels), **kwargs)


CONFIGS = [
    {},
    {"per_image": True},
    {"include_background": False},
    {"classes": "present"},
    {"reduction": "none"},
    {"reduction": "sum", "per_image": True},
    {"smooth": (0.0, 1e-3)},
    {"smooth": 1.0, "per_image": True, "reduction": "none"},
    {"class_weights": np.array([0.2, 1.0, 3.0])},
    {"class_weights": np.array([0.2, 1.0, 3.0]), "per_image": True, "include_background": False},
    {"ignore_index": 2},
    {"ignore_index": 2, "per_image": True, "classes": "present", "reduction": "none"},
    {"where": "mask", "reduction": "sum"},
    {"where": "mask", "per_image": True, "classes": "present"},
]


def materialise(config, labels):
    config = dict(config)
    if config.get("where") == "mask":
        rng = np.random.default_rng(7)
        config["where"] = rng.uniform(size=SHAPE) > 0.3
    return config


# --------------------------------------------------------------------------------------
# Values against the float64 reference.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
def test_values_softmax(name):
    logits, labels = make_case(0)
    labels[0, 0, :] = 2  # a few more of class 2, so that ignore_index=2 bites
    with jax.enable_x64(True):
        for config in CONFIGS:
            kwargs = {**materialise(config, labels), **hyper_kwargs(name)}
            want = ref.region_loss(name, logits, labels, **kwargs)
            got = call(name, logits, labels, **kwargs)
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=str(config))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("activation", ["sigmoid", None])
def test_values_sigmoid_and_probabilities(name, activation):
    configs = [{}, {"per_image": True, "reduction": "none"},
               {"where": "mask", "classes": "present"}]
    with jax.enable_x64(True):
        for num_classes, dense in [(1, False), (3, True), (3, False)]:
            logits, labels = make_case(1, num_classes=num_classes, activation=activation,
                                       dense=dense)
            for config in configs:
                kwargs = {**materialise(config, labels), **hyper_kwargs(name),
                          "activation": activation}
                want = ref.region_loss(name, logits, labels, **kwargs)
                got = call(name, logits, labels, **kwargs)
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12,
                                           err_msg=f"{num_classes} {dense} {config}")


@pytest.mark.parametrize("spatial", [(20,), (2, 2, 5)])
def test_values_1d_and_3d(spatial):
    logits, labels = make_case(2, spatial=spatial)
    with jax.enable_x64(True):
        for name in LOSSES:
            want = ref.region_loss(name, logits, labels, per_image=True, reduction="none")
            got = call(name, logits, labels, per_image=True, reduction="none")
            np.testing.assert_allclose(got, want, rtol=1e-10)


def test_dice_options_and_dense_labels():
    logits, labels = make_case(3, dense=True)
    with jax.enable_x64(True):
        for squared, log in itertools.product((False, True), repeat=2):
            for per_image in (False, True):
                kwargs = {"squared": squared, "log": log, "per_image": per_image}
                np.testing.assert_allclose(
                    call("dice_loss", logits, labels, **kwargs),
                    ref.region_loss("dice_loss", logits, labels, **kwargs), rtol=1e-10)
        for weighting in ("square", "simple", "uniform"):
            for per_image in (False, True):
                kwargs = {"weighting": weighting, "per_image": per_image, "reduction": "none"}
                np.testing.assert_allclose(
                    call("generalized_dice_loss", logits, labels, **kwargs),
                    ref.region_loss("generalized_dice_loss", logits, labels, **kwargs), rtol=1e-10)


def test_hand_worked_dice_and_jaccard():
    # One image, two pixels, C == 1, probabilities given: p = [0.8, 0.4], g = [1, 0].
    probs = jnp.array([[[0.8], [0.4]]])
    labels = jnp.array([[1, 0]])
    kwargs = {"activation": None, "smooth": 0.0}
    # tp = 0.8, fp = 0.4, fn = 0.2: Dice = 1.6 / 2.2, Jaccard = 0.8 / 1.4.
    np.testing.assert_allclose(sl.dice_loss(probs, labels, **kwargs), 1 - 1.6 / 2.2, rtol=1e-6)
    np.testing.assert_allclose(sl.jaccard_loss(probs, labels, **kwargs), 1 - 0.8 / 1.4,
                               rtol=1e-6)
    np.testing.assert_allclose(
        sl.tversky_loss(probs, labels, alpha=0.3, beta=0.7, **kwargs),
        1 - 0.8 / (0.8 + 0.3 * 0.4 + 0.7 * 0.2), rtol=1e-6)
    # Generalized Dice with one class is the Dice loss.
    np.testing.assert_allclose(sl.generalized_dice_loss(probs, labels, **kwargs), 1 - 1.6 / 2.2,
                               rtol=1e-6)


def test_monai_generalized_dice_absent_class_weight():
    # Class 2 absent from image 0: its weight is the largest finite weight of that image.
    logits, labels = make_case(4)
    labels[0] = np.where(labels[0] == 2, 1, labels[0])
    with jax.enable_x64(True):
        p = ref.probs(logits, "softmax")[0].reshape(-1, 3)
        g = ref.one_hot(labels, 3)[0].reshape(-1, 3)
        sum_g = g.sum(0)
        w = 1 / sum_g[:2] ** 2
        w = np.append(w, w.max())
        tp, card = (p * g).sum(0), (p + g).sum(0)
        want = 1 - (2 * (w * tp).sum() + 1e-5) / ((w * card).sum() + 1e-5)
        got = sl.generalized_dice_loss(jnp.asarray(logits), jnp.asarray(labels), per_image=True,
                                       reduction="none")
        np.testing.assert_allclose(got[0], want, rtol=1e-10)
        # No class with a finite weight (every class dropped or absent): 1 - s_num / s_den.
        empty = sl.generalized_dice_loss(jnp.asarray(logits), jnp.asarray(labels),
                                         where=jnp.zeros(SHAPE, bool), smooth=(1.0, 2.0))
        np.testing.assert_allclose(empty, 0.5, rtol=1e-12)


# --------------------------------------------------------------------------------------
# Gradients: custom_vjp == autodiff of the plain formula; finite differences.
# --------------------------------------------------------------------------------------


def random_config(rng, name, labels_shape):
    config = {
        "activation": rng.choice(["softmax", "sigmoid", None]),
        "per_image": bool(rng.integers(2)),
        "include_background": bool(rng.integers(2)),
        "classes": rng.choice(["all", "present"]),
        "reduction": rng.choice(["mean", "sum", "none"]),
        "smooth": [1e-5, (0.0, 1e-3), 0.5][rng.integers(3)],
    }
    mode = rng.integers(3)
    if mode == 1:
        config["ignore_index"] = 2
    elif mode == 2:
        config["where"] = rng.uniform(size=labels_shape) > 0.25
    if rng.integers(2):
        config["class_weights"] = rng.uniform(0.1, 2.0, size=3)
    return {**config, **hyper_kwargs(name)}


@pytest.mark.parametrize("name", LOSSES)
def test_custom_vjp_matches_plain_autodiff(name):
    """The shared custom_vjp gives the gradient of the plain formula, to 1e-6 in float64."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # hash() is salted per process
    with jax.enable_x64(True):
        for case in range(6):
            config = random_config(rng, name, SHAPE)
            activation = config["activation"]
            logits, labels = make_case(100 + case, activation=activation)
            cot = rng.normal(size=np.shape(ref.region_loss(name, logits, labels, **config)))

            def ours(x, labels=labels, config=config, cot=cot):
                return jnp.sum(call(name, x, labels, **config) * cot)

            def plain(x, labels=labels, config=config, cot=cot):
                return jnp.sum(ref.region_loss(name, x, labels, xp=jnp, **config) * cot)

            x = jnp.asarray(logits)
            got, want = jax.grad(ours)(x), jax.grad(plain)(x)
            scale = max(np.abs(want).max(), 1e-12)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale,
                                       err_msg=str(config))
            np.testing.assert_allclose(ours(x), plain(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_check_grads(name):
    logits, labels = make_case(5)
    labels[:, 0, 0] = 2
    where = np.ones(labels.shape, bool)
    where[0, 1] = False
    with jax.enable_x64(True):
        for kwargs in ({}, {"per_image": True, "ignore_index": 2, "where": jnp.asarray(where)},
                       {"activation": "sigmoid", "classes": "present", "reduction": "none"}):
            kwargs = {**kwargs, **hyper_kwargs(name)}

            def f(x, kwargs=kwargs):
                return call(name, x, labels, **kwargs)

            check_grads(f, (jnp.asarray(logits),), order=1, modes=("rev",))


def test_jaccard_uses_custom_vjp():
    logits, labels = make_case(6)
    jaxpr = jax.make_jaxpr(sl.jaccard_loss)(jnp.asarray(logits, jnp.float32), jnp.asarray(labels))
    assert "custom_vjp_call" in str(jaxpr)


def test_hyperparameter_gradients():
    """Hyperparameters are ordinary inputs of the custom_vjp: their gradients are right."""
    logits, labels = make_case(8)
    with jax.enable_x64(True):
        x = jnp.asarray(logits)

        def ours(alpha, beta):
            return sl.tversky_loss(x, labels, alpha=alpha, beta=beta)

        def plain(alpha, beta):
            return ref.region_loss("tversky_loss", x, labels, xp=jnp, alpha=alpha, beta=beta)

        got = jax.grad(ours, argnums=(0, 1))(0.4, 0.6)
        want = jax.grad(plain, argnums=(0, 1))(0.4, 0.6)
        np.testing.assert_allclose(got, want, rtol=1e-8)


# --------------------------------------------------------------------------------------
# Soft labels.
# --------------------------------------------------------------------------------------


def test_soft_label_losses_are_zero_at_the_target():
    rng = np.random.default_rng(9)
    soft = rng.uniform(0.05, 0.95, size=(*SHAPE, 3))
    soft = jnp.asarray(soft / soft.sum(-1, keepdims=True), jnp.float32)
    for per_image in (False, True):
        for name in ("jaccard_metric_loss", "dice_semimetric_loss"):
            loss = call(name, soft, soft, activation=None, per_image=per_image)
            assert loss == 0.0, name
        # The plain soft Dice and Jaccard are not minimised at p == g.
        assert call("dice_loss", soft, soft, activation=None, per_image=per_image) > 0.2
        assert call("jaccard_loss", soft, soft, activation=None, per_image=per_image) > 0.3
    # Label-smoothed one-hot targets: the plain Dice prefers the hard prediction.
    hard = jnp.asarray(ref.one_hot(make_case(9)[1], 3), jnp.float32)
    smoothed = 0.9 * hard + 0.1 / 3
    assert call("dice_loss", hard, smoothed, activation=None) < call(
        "dice_loss", smoothed, smoothed, activation=None)
    assert call("dice_semimetric_loss", smoothed, smoothed, activation=None) == 0.0
    assert call("dice_semimetric_loss", hard, smoothed, activation=None) > 0.0


@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_soft_label_losses_equal_plain_ones_for_hard_labels(activation):
    """Hard targets given as dense one-hot floats go through the L1 intersection;
    values and gradients still equal the plain losses (integer labels use Σpg)."""
    logits, labels = make_case(10, activation=activation)
    with jax.enable_x64(True):
        x = jnp.asarray(logits)
        onehot = jnp.asarray(ref.one_hot(labels, 3))
        pairs = (("jaccard_metric_loss", "jaccard_loss"), ("dice_semimetric_loss", "dice_loss"))
        for (soft_name, plain_name), kwargs in itertools.product(
                pairs, ({}, {"per_image": True, "where": jnp.asarray(labels != 1)})):
            kwargs = {**kwargs, "activation": activation}
            for target in (onehot, labels):
                got = jax.value_and_grad(
                    lambda x, n=soft_name, k=kwargs, t=target: call(n, x, t, **k))(x)
                want = jax.value_and_grad(
                    lambda x, n=plain_name, k=kwargs, t=target: call(n, x, t, **k))(x)
                np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
                np.testing.assert_allclose(got[1], want[1], rtol=1e-8, atol=1e-14)
        # Also at saturated probabilities (activation=None, p in {0, 1}), where the
        # slope of |p - g| at p == g decides.
        probs = onehot.at[0, 0, 0].set(1 - onehot[0, 0, 0])
        for soft_name, plain_name in pairs:
            g_soft = jax.grad(lambda p, n=soft_name: call(n, p, onehot, activation=None))(probs)
            g_plain = jax.grad(lambda p, n=plain_name: call(n, p, onehot, activation=None))(probs)
            np.testing.assert_allclose(g_soft, g_plain, rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------------------------
# Empty masks (API.md §3, §9.4, §9.5).
# --------------------------------------------------------------------------------------


def empty_cases():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(*SHAPE, 3)) * 2
    labels = rng.integers(0, 3, size=SHAPE)
    labels[0] = 0  # an all-background image
    labels[1] = 0
    labels[1, 2, 3] = 1  # a one-pixel object
    labels[2] = 255  # an all-ignored image
    labels[1, 0, 0] = 255
    labels = np.where(labels == 2, 1, labels)  # class 2 absent from the whole batch
    return logits, labels


@pytest.mark.parametrize("name", LOSSES)
def test_empty_masks(name):
    logits, labels = empty_cases()
    with jax.enable_x64(True):
        x = jnp.asarray(logits)
        for per_image, classes, smooth in itertools.product(
                (False, True), ("all", "present"), (1e-5, (0.0, 1e-6), 0.0)):
            reduction = "none" if per_image else "mean"
            kwargs = {"per_image": per_image, "classes": classes, "smooth": smooth,
                      "reduction": reduction, "ignore_index": 255, **hyper_kwargs(name)}
            want = ref.region_loss(name, logits, labels, **kwargs)
            got = call(name, x, labels, **kwargs)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=str(kwargs))
            grad = jax.grad(lambda x, kwargs=kwargs: jnp.sum(call(name, x, labels, **kwargs)))(x)
            assert np.all(np.isfinite(grad)), kwargs
            # Ignored pixels get exactly zero gradient.
            assert np.all(grad[2] == 0) and np.all(grad[1, 0, 0] == 0), kwargs


def test_empty_mask_conventions_by_hand():
    logits, labels = empty_cases()
    x = jnp.asarray(logits, jnp.float32)
    p = ref.probs(logits, "softmax")
    # Class 2 is absent from the batch: with classes="all" it scores s / (Σp + s).
    none = sl.dice_loss(x, labels, ignore_index=255, reduction="none")
    valid = labels != 255
    sum_p2 = p[..., 2][valid].sum()
    np.testing.assert_allclose(none[2], 1 - 1e-5 / (sum_p2 + 1e-5), rtol=1e-5)
    # ... and classes="present" drops it (0 in "none", out of the mean).
    present = sl.dice_loss(x, labels, ignore_index=255, classes="present", reduction="none")
    assert present[2] == 0
    np.testing.assert_allclose(sl.dice_loss(x, labels, ignore_index=255, classes="present"),
                               present[:2].mean(), rtol=1e-6)
    # The all-ignored image: every unit has no valid pixel and scores s / s = 1.
    per_unit = sl.jaccard_loss(x, labels, ignore_index=255, per_image=True, reduction="none")
    np.testing.assert_array_equal(per_unit[2], 0.0)
    # With smooth = 0 its score is 0/0 := 1: loss 0, gradient 0, no NaN.
    nothing = jnp.zeros(SHAPE, bool)
    zero = sl.dice_loss(x, labels, where=nothing, smooth=0.0)
    grad = jax.grad(lambda x: sl.dice_loss(x, labels, where=nothing, smooth=0.0))(x)
    assert zero == 0 and np.all(grad == 0)
    # With classes="present" and per_image=True the all-ignored image leaves the mean.
    kept = sl.dice_loss(x, labels, ignore_index=255, per_image=True, classes="present")
    units = sl.dice_loss(x, labels, ignore_index=255, per_image=True, classes="present",
                         reduction="none")
    present = ref.kept_units(ref.one_hot(labels, 3).sum((1, 2)), True, "present")
    per_image_mean = units.sum(-1)[:2] / present.sum(-1)[:2]
    np.testing.assert_allclose(kept, per_image_mean.mean(), rtol=1e-6)
    # log=True with s_num = 0 and an empty class: -log(0) clamped, finite.
    logged = sl.dice_loss(x, labels, ignore_index=255, log=True, smooth=(0.0, 1e-5))
    assert np.isfinite(logged)
    assert np.all(np.isfinite(jax.grad(lambda x: sl.dice_loss(
        x, labels, ignore_index=255, log=True, smooth=(0.0, 1e-5)))(x)))


# --------------------------------------------------------------------------------------
# Bounds, precision, extreme inputs.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", None])
def test_bounds(activation):
    for seed in range(2):
        logits, labels = make_case(20 + seed, activation=activation, scale=6.0)
        for name in LOSSES:
            for per_image in (False, True):
                loss = call(name, logits, labels, activation=activation, per_image=per_image,
                            reduction="none")
                assert np.all(loss >= -1e-6) and np.all(loss <= 1 + 1e-6), name
        loss = call("log_cosh_dice_loss", logits, labels, activation=activation,
                    reduction="none")
        assert np.all(loss <= np.log(np.cosh(1.0)) + 1e-6)


def test_perfect_prediction_is_near_zero():
    labels = np.random.default_rng(12).integers(0, 3, size=SHAPE)
    logits = jnp.asarray(ref.one_hot(labels, 3) * 40.0 - 20.0, jnp.float32)
    for name in LOSSES:
        assert call(name, logits, labels) < 1e-5, name


@pytest.mark.parametrize("magnitude", [1e4, 1e30])
def test_extreme_logits_are_finite(magnitude):
    logits, labels = make_case(13)
    x = jnp.asarray(np.sign(logits) * magnitude, jnp.float32)
    for name in LOSSES:
        for activation in ("softmax", "sigmoid"):
            value, grad = jax.value_and_grad(
                lambda x, name=name, a=activation: call(name, x, labels, activation=a))(x)
            assert np.isfinite(value) and np.all(np.isfinite(grad)), (name, activation)


def test_bfloat16_inputs():
    logits, labels = make_case(14)
    x32 = jnp.asarray(logits, jnp.float32)
    x16 = x32.astype(jnp.bfloat16)
    for name in LOSSES:
        value, grad = jax.value_and_grad(lambda x, name=name: call(name, x, labels))(x16)
        assert value.dtype == jnp.float32 and grad.dtype == jnp.bfloat16
        want = call(name, x16.astype(jnp.float32), labels)
        np.testing.assert_allclose(value, want, rtol=1e-6)


def test_float32_matches_float64_reference():
    logits, labels = make_case(15, spatial=(32, 32))
    for name in LOSSES:
        got = call(name, jnp.asarray(logits, jnp.float32), labels, per_image=True,
                   reduction="none")
        want = ref.region_loss(name, logits, labels, per_image=True, reduction="none")
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


# --------------------------------------------------------------------------------------
# Peers (configured alike; values from the formulas, not from the peers).
# --------------------------------------------------------------------------------------


def test_optax_dice_equivalence():
    optax = pytest.importorskip("optax")
    logits, labels = make_case(16)
    x = jnp.asarray(logits, jnp.float32)
    onehot = jax.nn.one_hot(labels, 3)
    want = optax.losses.dice_loss(x, onehot, smooth=1.0)
    got = sl.dice_loss(x, labels, per_image=True, smooth=2.0, reduction="none").mean(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    want = optax.losses.dice_loss(x, onehot, smooth=0.5, alpha=0.3, beta=0.7)
    got = sl.tversky_loss(x, labels, alpha=0.3, beta=0.7, smooth=0.5, per_image=True,
                          reduction="none").mean(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_smp_style_present_mean():
    # smp zeroes absent classes and then averages over all C: sum over present / C.
    logits, labels = empty_cases()
    x = jnp.asarray(logits, jnp.float32)
    summed = sl.dice_loss(x, labels, classes="present", reduction="sum", smooth=0.0,
                          ignore_index=255)
    p = ref.probs(logits, "softmax").reshape(-1, 3)
    g = ref.one_hot(labels, 3).reshape(-1, 3)
    valid = (labels != 255).reshape(-1)
    p, g = p[valid], g[valid]
    dice = 1 - 2 * (p * g).sum(0) / (p.sum(0) + g.sum(0))
    want = (dice * (g.sum(0) > 0)).mean()
    np.testing.assert_allclose(summed / 3, want, rtol=1e-5)


# --------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------


def test_errors():
    logits, labels = make_case(17)
    x = jnp.asarray(logits, jnp.float32)
    with pytest.raises(ValueError, match="reduction"):
        sl.dice_loss(x, labels, reduction="avg")
    with pytest.raises(ValueError, match="classes"):
        sl.jaccard_loss(x, labels, classes="some")
    with pytest.raises(ValueError, match="smooth"):
        sl.dice_loss(x, labels, smooth=-1.0)
    with pytest.raises(ValueError, match="smooth"):
        sl.dice_loss(x, labels, smooth=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="class_weights"):
        sl.tversky_loss(x, labels, class_weights=jnp.ones(4))
    with pytest.raises(ValueError, match="alpha"):
        sl.tversky_loss(x, labels, alpha=-0.1)
    with pytest.raises(ValueError, match="gamma"):
        sl.focal_tversky_loss(x, labels, gamma=-1.0)
    with pytest.raises(ValueError, match="`r`"):
        sl.sensitivity_specificity_loss(x, labels, r=1.5)
    with pytest.raises(ValueError, match="weighting"):
        sl.generalized_dice_loss(x, labels, weighting="cubic")
    with pytest.raises(ValueError, match="softmax"):
        sl.dice_loss(x[..., :1], labels, activation="softmax")
    with pytest.raises(TypeError, match="per_image"):
        sl.dice_loss(x, labels, per_image="yes")
    with pytest.raises(ValueError, match="ignore_index"):
        sl.dice_loss(x, jax.nn.one_hot(labels, 3), ignore_index=0)

