"""Tests for the boundary losses (Hausdorff-DT, boundary, shape-aware, distance-weighted CE).

Expected values come from the float64 NumPy references of ``reference.py``,
written from the formulas, with ``scipy.ndimage`` for the distance transforms:
MONAI's ``HausdorffDTLoss.forward`` loop (``hausdorff_dt_loss``), Kervadec et
al.'s ``one_hot2dist`` + ``SurfaceLoss`` (``boundary_loss``), Ma et al.'s
``compute_edts_forPenalizedLoss`` map (``penalty_map``), and the contour
distance of the shape-aware loss. Plus hand-worked 1D cases, float64
finite differences and the "excluded pixels behave like pixels outside the
array" property (``where`` masking columns equals cropping them). Generic
properties (jit, vmap, dtypes, extreme logits, bad inputs) are in
``test_contract.py``; ``axis_name`` across devices in ``test_distributed.py``.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
import scipy.ndimage as ndi
from jax._src import core
from jax._src.interpreters import partial_eval as pe
from jax.test_util import check_grads
from test_pixelwise import traced

import segloss_jax as sl
from segloss_jax._src import backend, distance_maps

B = 2
SHAPE_2D = (7, 6)
SHAPE_3D = (5, 4, 3)
LOSSES = [
    sl.hausdorff_dt_loss,
    sl.boundary_loss,
    sl.shape_aware_loss,
    sl.distance_weighted_cross_entropy,
]


# ------------------------------------------------------------------------------ inputs


def _inputs(spatial, c, *, seed=0, activation="softmax", dtype=np.float64, blobs=True):
    """Logits ``[B, *spatial, C]`` and integer labels; probabilities kept away from 0.5.

    ``blobs`` draws labels as thresholded smoothed noise, so that classes form
    regions with boundaries rather than salt and pepper.
    """
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(B, *spatial, c))
    probs = ref.probs(logits, activation)
    # Nudge logits so that no probability lies within 0.02 of 0.5 (finite
    # differences must not move a pixel across the threshold of the masks).
    while np.any(np.abs(probs - 0.5) < 0.02):
        near = np.abs(probs - 0.5) < 0.02
        logits = np.where(near, logits + rng.normal(scale=0.5, size=logits.shape), logits)
        probs = ref.probs(logits, activation)
    k = max(c, 2)
    if blobs:
        sigma = (0, *[1] * len(spatial), 0)
        noise = ndi.gaussian_filter(rng.normal(size=(B, *spatial, k)), sigma=sigma)
        labels = np.argmax(noise, axis=-1)
    else:
        labels = rng.integers(0, k, size=(B, *spatial))
    return logits.astype(dtype), labels.astype(np.int32)


def _first(x):
    """``[B, *spatial, C]`` -> ``[B, C, *spatial]`` (MONAI's layout)."""
    return np.moveaxis(x, -1, 1)


def _close(actual, desired, rtol=1e-9, atol=1e-12):
    np.testing.assert_allclose(np.asarray(actual, np.float64), desired, rtol=rtol, atol=atol)


# -------------------------------------------------------------------- hand-worked 1D cases

# One image of six pixels, object at 2..4; foreground probabilities p.
HAND_LABELS = np.array([[0, 0, 1, 1, 1, 0]])
HAND_P = np.array([[0.1, 0.6, 0.8, 0.9, 0.4, 0.2]])
HAND_LOGITS = np.log(np.stack([1 - HAND_P, HAND_P], axis=-1))


def test_hand_worked_hausdorff():
    # d_g = edt(g) + edt(¬g) = [2,1,1,2,1,1]; the prediction p > 0.5 = {1,2,3} gives
    # d_p = [1,1,2,1,1,2]; (p - g)² = [.01,.36,.04,.01,.36,.04];
    # Σ (p - g)² (d_p² + d_g²) = .05 + .72 + .2 + .05 + .72 + .2 = 1.94, over 6 pixels.
    loss = sl.hausdorff_dt_loss(HAND_LOGITS, HAND_LABELS)
    _close(loss, 1.94 / 6, rtol=1e-6)
    # alpha = 1: fields d_p + d_g = [3,2,3,3,2,3] -> (.03+.72+.12+.03+.72+.12) / 6.
    _close(sl.hausdorff_dt_loss(HAND_LOGITS, HAND_LABELS, alpha=1.0), 1.74 / 6, rtol=1e-6)


def test_hand_worked_boundary():
    # phi_G = [2, 1, 0, -1, 0, 1]; Σ phi p = .2 + .6 + 0 - .9 + 0 + .2 = 0.1 over 6 pixels.
    _close(sl.boundary_loss(HAND_LOGITS, HAND_LABELS), 0.1 / 6, rtol=1e-6)
    # The signed map is the library's signed_distance of the target.
    phi = distance_maps.signed_map(
        jnp.asarray(HAND_LABELS[:, None] == 1),
        jnp.ones((1, 1, 6), bool),
        None,
        spatial_ndim=1,
        static_sampling=None,
        wide=False,
    )
    np.testing.assert_array_equal(phi[0, 0], sl.signed_distance(jnp.asarray(HAND_LABELS[0])))


def test_hand_worked_distance_weighted_ce():
    # Background {0,1,5}: D = [2,1,_,_,_,1] -> Φ = [0,1,_,_,_,1]; object {2,3,4}: D = [1,2,1]
    # -> Φ = [1,0,1]. So the weights are 1 + Φ = [1,2,2,1,2,2].
    ce = -np.log(np.where(HAND_LABELS == 1, HAND_P, 1 - HAND_P))
    expected = np.mean(np.array([1, 2, 2, 1, 2, 2]) * ce)
    _close(sl.distance_weighted_cross_entropy(HAND_LOGITS, HAND_LABELS), expected, rtol=1e-6)


def test_hand_worked_shape_aware():
    # Class 1: predicted contour {1, 3}, target contour {2, 4}: E = (1 + 1) / 2 = 1.
    # Class 0: predicted {0, 4}, target {1, 5}: E = 1. So every pixel's CE counts twice.
    ce = -np.log(np.where(HAND_LABELS == 1, HAND_P, 1 - HAND_P))
    _close(sl.shape_aware_loss(HAND_LOGITS, HAND_LABELS), 2 * ce.mean(), rtol=1e-6)


# ------------------------------------------------------------------ references: Hausdorff


@pytest.mark.parametrize("spatial", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
@pytest.mark.parametrize("activation,c", [("softmax", 3), ("sigmoid", 1)])
def test_hausdorff_matches_monai_reference(spatial, activation, c):
    with jax.enable_x64(True):
        logits, labels = _inputs(spatial, c, activation=activation)
        probs, dense = _first(ref.probs(logits, activation)), _first(ref.one_hot(labels, c))
        options = [(False, True), (False, False)] + ([(True, True)] if c > 1 else [])
        for include_background, per_image in options:
            units = sl.hausdorff_dt_loss(
                logits,
                labels,
                activation=activation,
                include_background=include_background,
                per_image=per_image,
                reduction="none",
            )
            expected = ref.hausdorff_dt_loss(
                probs,
                dense,
                include_background=include_background,
                batch=not per_image,
                reduction="none",
            )
            if not include_background and c > 1:
                units = units[..., 1:]  # the dropped background holds 0
            _close(units, expected if per_image else expected[0])


def test_hausdorff_reductions_match_monai():
    with jax.enable_x64(True):
        logits, labels = _inputs(SHAPE_2D, 3)
        probs, dense = _first(ref.probs(logits, "softmax")), _first(ref.one_hot(labels, 3))
        for per_image, reduction in [(True, "mean"), (False, "mean"), (True, "sum")]:
            loss = sl.hausdorff_dt_loss(logits, labels, per_image=per_image, reduction=reduction)
            expected = ref.hausdorff_dt_loss(probs, dense, batch=not per_image,
                                             reduction=reduction)
            _close(loss, expected)


def test_hausdorff_alpha_dense_labels_and_sampling():
    with jax.enable_x64(True):
        logits, labels = _inputs(SHAPE_2D, 3, seed=3)
        rng = np.random.default_rng(3)
        # Soft targets: the mask is g > 0.5, the squared error uses g itself.
        dense = 0.8 * ref.one_hot(labels, 3) + 0.2 * rng.dirichlet(np.ones(3), size=labels.shape)
        probs = _first(ref.probs(logits, "softmax"))
        for alpha, sampling in [(1.0, (1.0, 1.0)), (1.5, (0.5, 2.0)), (2.0, (0.7, 0.7))]:
            traced = jnp.asarray(sampling)  # one compiled program for every value
            loss = sl.hausdorff_dt_loss(logits, dense, alpha=alpha, sampling=traced)
            expected = ref.hausdorff_dt_loss(probs, _first(dense), alpha=alpha,
                                             sampling=sampling)
            _close(loss, expected)


def test_hausdorff_empty_and_full_masks_have_no_field():
    # Image 0: target all background and prediction all below 0.5 for class 1, so
    # both fields are 0 (MONAI's convention) and the loss is 0 although p != g.
    # Image 1: the prediction covers everything: its field is 0, the target's is not.
    p = np.full((2, 4, 4), 0.3)
    p[1] = 0.9
    logits = np.log(np.stack([1 - p, p], axis=-1))
    labels = np.zeros((2, 4, 4), np.int32)
    labels[1, 1:3, 1:3] = 1
    units = sl.hausdorff_dt_loss(logits, labels, reduction="none")
    assert units[0, 1] == 0
    expected = ref.hausdorff_dt_loss(_first(ref.probs(logits, "softmax")),
                                     _first(ref.one_hot(labels, 2)), reduction="none")
    _close(units[:, 1:], expected, rtol=1e-6)
    assert units[1, 1] > 0


def test_hausdorff_class_weights_and_zero_at_perfect_prediction():
    with jax.enable_x64(True):
        logits, labels = _inputs(SHAPE_2D, 3, seed=4)
        w = np.array([5.0, 1.0, 3.0])
        units = np.asarray(
            sl.hausdorff_dt_loss(logits, labels, include_background=True, reduction="none")
        )
        weighted = sl.hausdorff_dt_loss(logits, labels, include_background=True, class_weights=w)
        _close(weighted, np.mean((units * w).sum(-1) / w.sum()))
        perfect = np.where(ref.one_hot(labels, 3) > 0, 1e4, -1e4)
        assert sl.hausdorff_dt_loss(perfect, labels) == 0


# ------------------------------------------------------------------- references: boundary


@pytest.mark.parametrize("spatial", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
def test_boundary_matches_kervadec_reference(spatial):
    with jax.enable_x64(True):
        logits, labels = _inputs(spatial, 3)
        probs, dense = _first(ref.probs(logits, "softmax")), _first(ref.one_hot(labels, 3))
        for per_image in (True, False):
            loss = sl.boundary_loss(logits, labels, per_image=per_image)
            _close(loss, ref.boundary_loss(probs, dense, idc=[1, 2]))
        loss = sl.boundary_loss(logits, labels, include_background=True)
        _close(loss, ref.boundary_loss(probs, dense, idc=[0, 1, 2]))
        if len(spatial) == 2:
            # Anisotropic spacing >= 1: the reference's "- 1" is our smallest spacing.
            loss = sl.boundary_loss(logits, labels, sampling=(1.0, 2.0))
            _close(loss, ref.boundary_loss(probs, dense, idc=[1, 2], sampling=(1.0, 2.0)))


def test_boundary_sigmoid_and_units():
    with jax.enable_x64(True):
        logits, labels = _inputs(SHAPE_2D, 1, activation="sigmoid", seed=5)
        probs, dense = _first(ref.probs(logits, "sigmoid")), _first(ref.one_hot(labels, 1))
        loss = sl.boundary_loss(logits, labels, activation="sigmoid")
        _close(loss, ref.boundary_loss(probs, dense, idc=[0]))  # C == 1: the channel is kept
        units = sl.boundary_loss(logits, labels, activation="sigmoid", reduction="none")
        assert units.shape == (B, 1)
        # Minimised by the target itself among hard predictions.
        target = np.where(ref.one_hot(labels, 1) > 0, 1e4, -1e4)
        best = sl.boundary_loss(target, labels, activation="sigmoid")
        assert best < loss and best < 0


def test_boundary_empty_and_full_targets_give_zero():
    logits = np.random.default_rng(0).normal(size=(2, 5, 5, 2))
    labels = np.zeros((2, 5, 5), np.int32)
    labels[1] = 1  # image 0: class 1 empty; image 1: class 1 full
    units = sl.boundary_loss(logits, labels, reduction="none")
    np.testing.assert_array_equal(units, np.zeros((2, 2)))


# -------------------------------------------------------- references: distance-weighted CE


@pytest.mark.parametrize("spatial", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
@pytest.mark.parametrize("activation,c", [("softmax", 3), ("sigmoid", 2)])
def test_distance_weighted_ce_matches_reference(spatial, activation, c):
    with jax.enable_x64(True):
        logits, labels = _inputs(spatial, c, activation=activation, seed=6)
        w = np.linspace(0.5, 2.0, c)
        loss = sl.distance_weighted_cross_entropy(
            logits, labels, activation=activation, class_weights=w
        )
        expected = ref.distance_weighted_cross_entropy(logits, labels, activation,
                                                       class_weights=w)
        _close(loss, expected)
        if len(spatial) == 2:
            kw = {"max_distance": 1.5, "sampling": (0.5, 1.5)}
            loss = sl.distance_weighted_cross_entropy(logits, labels, activation=activation, **kw)
            _close(loss, ref.distance_weighted_cross_entropy(logits, labels, activation, **kw))


def test_distance_weighted_ce_conventions():
    with jax.enable_x64(True):
        # A one-pixel-wide line is all boundary (weight 2); a class covering the whole
        # image has no boundary (weight 1, plain CE).
        logits = np.random.default_rng(1).normal(size=(2, 5, 6, 2))
        labels = np.zeros((2, 5, 6), np.int32)
        labels[0, 2, :] = 1
        ce, dwce = jax.jit(lambda x, y: (  # one compiled program
            sl.cross_entropy(x, y, reduction="none"),
            sl.distance_weighted_cross_entropy(x, y, reduction="none")))(logits, labels)
        np.testing.assert_allclose(dwce[0, 2], 2 * ce[0, 2], rtol=1e-12)
        np.testing.assert_allclose(dwce[1], ce[1], rtol=1e-12)
        # Phi lies in [0, 1]: the weighted loss lies between CE and 2 CE.
        assert np.all((dwce >= ce - 1e-12) & (dwce <= 2 * ce + 1e-12))


# ------------------------------------------------------------------ references: shape-aware


@pytest.mark.parametrize("spatial", [SHAPE_2D, SHAPE_3D], ids=["2d", "3d"])
@pytest.mark.parametrize("activation,c", [("softmax", 3), ("sigmoid", 1)])
def test_shape_aware_matches_reference(spatial, activation, c):
    with jax.enable_x64(True):
        logits, labels = _inputs(spatial, c, activation=activation, seed=7)
        loss = sl.shape_aware_loss(logits, labels, activation=activation)
        _close(loss, ref.shape_aware_loss(logits, labels, activation))
        if len(spatial) == 2:
            loss = sl.shape_aware_loss(logits, labels, activation=activation, sampling=(2.0, 0.5))
            _close(loss, ref.shape_aware_loss(logits, labels, activation, sampling=(2.0, 0.5)))


def test_shape_aware_perfect_prediction_is_cross_entropy():
    with jax.enable_x64(True):
        logits, labels = _inputs(SHAPE_2D, 3, seed=8)
        # Shift the logits so that the argmax class has p > 0.5 and equals the label.
        perfect = logits + 20.0 * ref.one_hot(labels, 3)
        _close(sl.shape_aware_loss(perfect, labels), sl.cross_entropy(perfect, labels))
        bin_logits, bin_labels = _inputs(SHAPE_2D, 1, activation="sigmoid", seed=8)
        perfect = np.abs(bin_logits) * np.where(ref.one_hot(bin_labels, 1) > 0, 1, -1)
        _close(
            sl.shape_aware_loss(perfect, bin_labels, activation="sigmoid"),
            sl.binary_cross_entropy(perfect, bin_labels),
        )


# ------------------------------------------------------------------ where and ignore_index


def _band(shape, width=2):
    """``[B, *shape]`` validity mask excluding the last ``width`` columns."""
    valid = np.ones((B, *shape), bool)
    valid[..., -width:] = False
    return valid


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_excluded_columns_equal_cropping(loss):
    # Excluded pixels are "don't care", exactly like positions outside the array:
    # masking the last columns out equals cropping them off.
    with jax.enable_x64(True):
        logits, labels = _inputs(SHAPE_2D, 3, seed=9)
        masked = loss(logits, labels, where=jnp.asarray(_band(SHAPE_2D)))
        cropped = loss(logits[:, :, :-2], labels[:, :, :-2])
        _close(masked, cropped)


def test_where_matches_references():
    with jax.enable_x64(True):
        logits, labels = _inputs(SHAPE_2D, 3, seed=10)
        rng = np.random.default_rng(10)
        valid = rng.random(labels.shape) > 0.25
        where = jnp.asarray(valid)
        probs, dense = _first(ref.probs(logits, "softmax")), _first(ref.one_hot(labels, 3))
        for per_image in (True, False):
            loss = sl.hausdorff_dt_loss(logits, labels, where=where, per_image=per_image)
            _close(loss, ref.hausdorff_dt_loss(probs, dense, valid=valid, batch=not per_image))
        _close(
            sl.distance_weighted_cross_entropy(logits, labels, where=where),
            ref.distance_weighted_cross_entropy(logits, labels, "softmax", valid=valid),
        )
        _close(
            sl.shape_aware_loss(logits, labels, where=where),
            ref.shape_aware_loss(logits, labels, "softmax", valid=valid),
        )


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("activation,c", [("softmax", 3), ("sigmoid", 1)])
def test_gradients_match_finite_differences(loss, activation, c):
    with jax.enable_x64(True):
        logits, labels = _inputs(SHAPE_2D, c, activation=activation, seed=11)
        valid = jnp.asarray(_band(SHAPE_2D))

        def f(x):
            return loss(x, labels, activation=activation, where=valid)

        check_grads(jax.jit(f), (jnp.asarray(logits),), order=1, modes=["rev"], eps=1e-5)


def test_gradient_of_hausdorff_is_the_weighted_squared_error():
    # The maps are constants: dL/dp = 2 (p - g) field / N for the one kept class.
    with jax.enable_x64(True):
        p = jnp.asarray(HAND_P[..., None])
        grad = jax.grad(lambda q: sl.hausdorff_dt_loss(q, HAND_LABELS, activation=None))(p)
        field = np.array([5.0, 2, 5, 5, 2, 5])
        expected = 2 * (HAND_P[0] - HAND_LABELS[0]) * field / 6
        _close(grad[0, :, 0], expected, rtol=1e-12)


# ------------------------------------------------------------- one activation, one check


def _activation_elements_in(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("exp", "exp2", "logistic"):
            total += sum(math.prod(v.aval.shape) for v in eqn.outvars)
        for sub in core.jaxprs_in_params(eqn.params):  # pjit, custom_jvp/vjp, scan, cond...
            total += _activation_elements_in(sub)
    return total


def activation_elements(fn, *args) -> int:
    """Elements produced by ``exp`` (``exp2``) and ``logistic`` in the live forward graph of ``fn``.

    The graph is traced as under an outer ``jit`` and cleared of dead code; nested
    jaxprs are walked. One activation pass of the logits costs ``logits.size``.
    """
    closed = jax.make_jaxpr(fn)(*args)
    jaxpr, _ = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars))
    return _activation_elements_in(jaxpr)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("activation,c", [("softmax", 3), ("sigmoid", 1)])
def test_one_activation_pass(loss, activation, c):
    rng = np.random.default_rng(16)
    logits = jnp.asarray(rng.normal(size=(2, 6, 5, c)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, max(c, 2), size=(2, 6, 5)), jnp.int32)
    count = activation_elements(lambda x: loss(x, labels, activation=activation), logits)
    assert 0 < count <= logits.size


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_inputs_are_prepared_once(loss, monkeypatch):
    calls = []
    real = distance_maps.prepare
    monkeypatch.setattr(distance_maps, "prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    logits, labels = _inputs(SHAPE_2D, 3, seed=17, dtype=np.float32)
    loss(logits, labels)
    assert len(calls) == 1


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_class_weights_as_list_tuple_or_array(loss):
    logits, labels = _inputs(SHAPE_2D, 3, seed=18, dtype=np.float32)
    takes = inspect.signature(loss).parameters
    options = {"include_background": True} if "include_background" in takes else {}
    expected = loss(logits, labels, class_weights=jnp.array([0.5, 2.0, 1.0]), **options)
    for weights in ([0.5, 2.0, 1.0], (0.5, 2, 1), np.array([0.5, 2.0, 1.0])):
        got = loss(logits, labels, class_weights=weights, **options)
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="class_weights"):
        loss(logits, labels, class_weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="class_weights"):
        loss(logits, labels, class_weights=[1.0, 1.0])


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_integer_where_is_a_mask(loss):
    logits, labels = _inputs(SHAPE_2D, 3, seed=19, dtype=np.float32)
    where = np.random.default_rng(19).integers(-1, 3, size=labels.shape)
    np.testing.assert_allclose(loss(logits, labels, where=jnp.asarray(where)),
                               loss(logits, labels, where=jnp.asarray(where != 0)), rtol=1e-6)


def test_chunked_transform_on_cpu(monkeypatch):
    # Large batches of masks go through the transform in chunks on CPU; force
    # chunks of 5 masks (12 masks: the last chunk is padded).
    rng = np.random.default_rng(15)
    masks = jnp.asarray(rng.random((2, 3, 2, 6, 5)) < 0.5)
    monkeypatch.setattr(backend, "_EDT_CHUNK", 5 * 30)
    chunked = distance_maps._edt(masks, spatial_ndim=2, sampling=(1.0, 0.5))
    expected = np.stack([ref.edt(m, (1.0, 0.5)) for m in np.asarray(masks).reshape(-1, 6, 5)])
    np.testing.assert_allclose(chunked, expected.reshape(masks.shape), rtol=1e-6)
    # Through a loss (a shape used nowhere else, so it is compiled with the patch).
    with jax.enable_x64(True):
        logits, labels = _inputs((6, 5), 3, seed=15)
        probs, dense = _first(ref.probs(logits, "softmax")), _first(ref.one_hot(labels, 3))
        _close(sl.hausdorff_dt_loss(logits, labels), ref.hausdorff_dt_loss(probs, dense))


def test_traced_sampling_under_jit():
    logits, labels = _inputs(SHAPE_2D, 3, seed=13, dtype=np.float32)
    sampling = jnp.array([0.5, 2.0])
    for loss in (sl.boundary_loss, sl.shape_aware_loss):
        eager = loss(logits, labels, sampling=(0.5, 2.0))
        jitted = jax.jit(lambda x, s, loss=loss: loss(x, labels, sampling=s))(logits, sampling)
        np.testing.assert_allclose(jitted, eager, rtol=1e-6)


def test_reduction_none_shapes():
    logits, labels = _inputs(SHAPE_2D, 3, seed=14, dtype=np.float32)
    units = sl.hausdorff_dt_loss(logits, labels, reduction="none")
    assert units.shape == (B, 3)
    np.testing.assert_array_equal(units[:, 0], 0)  # the dropped background
    assert sl.boundary_loss(logits, labels, reduction="none", per_image=False).shape == (3,)
    assert sl.shape_aware_loss(logits, labels, reduction="none").shape == (B, *SHAPE_2D)
    per_element = sl.distance_weighted_cross_entropy(
        logits, labels, reduction="none", activation="sigmoid"
    )
    assert per_element.shape == (B, *SHAPE_2D, 3)


# -------------------------------------------------------------------------------- errors


def test_bad_hyperparameters():
    logits, labels = _inputs(SHAPE_2D, 3, dtype=np.float32)
    with pytest.raises(ValueError, match="alpha"):
        traced(sl.hausdorff_dt_loss, logits, labels, alpha=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        traced(sl.boundary_loss, logits, labels, reduction="max")
    for bad in (0.0, -2.0):
        with pytest.raises(ValueError, match="max_distance"):
            traced(sl.distance_weighted_cross_entropy, logits, labels, max_distance=bad)
    for loss in (sl.shape_aware_loss, sl.distance_weighted_cross_entropy):
        with pytest.raises(ValueError, match="activation"):
            traced(loss, jax.nn.softmax(logits), labels, activation=None)
    for loss in LOSSES:
        with pytest.raises(ValueError, match="sampling"):
            traced(loss, logits, labels, sampling=(1.0, 2.0, 3.0))
        with pytest.raises(ValueError, match="sampling"):
            traced(loss, logits, labels, sampling=-1.0)


# ------------------------------------------------------------ precomputed target maps


def _loss_name(loss):
    return loss.__name__.removesuffix("_loss")


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("activation,c,spatial", [("softmax", 3, SHAPE_2D),
                                                  ("sigmoid", 1, SHAPE_3D)])
def test_precomputed_target_distance_gives_the_same_loss(loss, activation, c, spatial):
    logits, labels = _inputs(spatial, c, seed=21, activation=activation, dtype=np.float32)
    where = np.random.default_rng(21).random(labels.shape) > 0.2
    kwargs = {"activation": activation, "where": where, "sampling": (2.0, 1.0, 0.5)[-len(spatial):]}
    if loss is sl.distance_weighted_cross_entropy:
        kwargs["max_distance"] = 2.5
    maps = sl.target_distance_map(_loss_name(loss), labels, num_classes=c, **kwargs)
    assert maps.shape == logits.shape and maps.dtype == jnp.float32
    # The function itself names the loss as well as its registry name.
    np.testing.assert_array_equal(sl.target_distance_map(loss, labels, num_classes=c, **kwargs),
                                  maps)

    def both(x, m):  # one compiled program: without and with the precomputed maps
        return (jax.value_and_grad(lambda z: loss(z, labels, **kwargs))(x),
                jax.value_and_grad(lambda z: loss(z, labels, target_distance=m, **kwargs))(x))

    (expected, expected_grad), (value, grad) = jax.jit(both)(logits, maps)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-9)
    # Dense labels give the same maps.
    dense = jax.nn.one_hot(labels, max(c, 2))[..., -c:]
    np.testing.assert_array_equal(sl.target_distance_map(loss, dense, **kwargs), maps)


def test_precomputed_boundary_map_is_the_signed_distance():
    # Independently: the boundary loss's map of a mask is scipy's signed distance
    # (negative inside, 0 on the inner boundary), channel 1 of the integer labels.
    _, labels = _inputs(SHAPE_2D, 2, seed=22, dtype=np.float32)
    maps = sl.target_distance_map("boundary", labels, num_classes=2, sampling=(1.0, 2.0))
    for b in range(B):
        mask = labels[b] == 1
        inside = ndi.distance_transform_edt(mask, sampling=(1.0, 2.0))
        outside = ndi.distance_transform_edt(~mask, sampling=(1.0, 2.0))
        expected = np.where(mask, 1.0 - inside, outside)
        np.testing.assert_allclose(maps[b, ..., 1], expected, rtol=1e-6)


def test_precomputed_map_skips_the_target_transform():
    logits, labels = _inputs(SHAPE_2D, 3, seed=23, dtype=np.float32)
    maps = sl.target_distance_map("boundary", labels, num_classes=3)
    jaxpr = str(jax.make_jaxpr(lambda x, m: sl.boundary_loss(x, labels, target_distance=m))(
        logits, maps))
    assert "while" not in jaxpr and "scan" not in jaxpr  # no transform left
    grad = jax.grad(lambda m: sl.boundary_loss(logits, labels, target_distance=m))(maps)
    np.testing.assert_array_equal(grad, 0)  # a constant for grad


def test_precomputed_map_errors():
    logits, labels = _inputs(SHAPE_2D, 3, dtype=np.float32)
    maps = sl.target_distance_map("hausdorff_dt", labels, num_classes=3)
    shapes = r"target_distance.*\(2, 7, 6, 3\).*got shape \(2, 7, 6, 2\)"
    with pytest.raises(ValueError, match=shapes):
        sl.hausdorff_dt_loss(logits, labels, target_distance=maps[..., :2])
    with pytest.raises(TypeError, match="target_distance.*floating"):
        sl.boundary_loss(logits, labels, target_distance=maps.astype(jnp.int32))
    with pytest.raises(ValueError, match="num_classes.*required"):
        sl.target_distance_map("boundary", labels)
    with pytest.raises(ValueError, match="loss"):
        sl.target_distance_map("dice", labels, num_classes=3)
    with pytest.raises(ValueError, match="activation"):
        sl.target_distance_map("shape_aware", labels, num_classes=3, activation=None)
