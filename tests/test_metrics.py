"""Metrics, the streaming evaluator and class weights against NumPy/scipy references.

The references are in ``reference.py``, written from the definitions: the
confusion matrix with ``np.add.at``, surfaces with
``scipy.ndimage.binary_erosion`` and surface distances by brute force over all
pairs of surface elements. The streaming evaluator with ``axis_name`` under
``shard_map`` is tested in ``test_distributed.py``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from jax.experimental import checkify
from scipy import ndimage

import segloss_jax as sl

# ----------------------------------------------------------------------------- inputs


def random_labels(rng, shape, c, ignore=None, p_ignore=0.1):
    y = rng.integers(0, c, shape)
    if ignore is not None:
        y = np.where(rng.random(shape) < p_ignore, ignore, y)
    return y


def blob(rng, shape, p=0.5, smooth=1.0):
    """A random mask with some spatial structure."""
    noise = ndimage.gaussian_filter(rng.normal(size=shape), smooth)
    return noise > np.quantile(noise, 1 - p)


# ----------------------------------------------------------------------------- confusion matrix


@pytest.mark.parametrize("shape", [(2, 7), (2, 5, 6), (1, 3, 4, 5)])
@pytest.mark.parametrize("c", [2, 5])
def test_confusion_matrix_matches_reference(shape, c):
    rng = np.random.default_rng(0)
    labels = random_labels(rng, shape, c, ignore=255)
    pred = rng.integers(0, c, shape)
    where = rng.random(shape) > 0.2
    got = sl.confusion_matrix(jnp.asarray(pred), jnp.asarray(labels), c, where=jnp.asarray(where),
                              ignore_index=255)
    assert got.dtype == jnp.int32 and got.shape == (c, c)
    np.testing.assert_array_equal(got, ref.confusion_matrix(pred, labels, c, where, 255))


@given(st.sampled_from([2, 5]), st.integers(0, 2**31 - 1))
def test_confusion_matrix_property(c, seed):
    rng = np.random.default_rng(seed)
    labels = random_labels(rng, (40,), c, ignore=-1, p_ignore=rng.random())
    pred = rng.integers(0, c, (40,))
    got = sl.confusion_matrix(jnp.asarray(pred), jnp.asarray(labels), c, ignore_index=-1)
    np.testing.assert_array_equal(got, ref.confusion_matrix(pred, labels, c, None, -1))
    # Rows are targets: they sum to the per-class target counts.
    np.testing.assert_array_equal(np.asarray(got).sum(1),
                                  [np.sum(labels == k) for k in range(c)])


def test_confusion_matrix_rows_are_targets():
    m = sl.confusion_matrix(jnp.array([1, 1]), jnp.array([0, 0]), 2)
    np.testing.assert_array_equal(m, [[0, 2], [0, 0]])


def test_confusion_matrix_narrow_and_bool_dtypes():
    labels = jnp.array([[0, 1, 255, 2]], jnp.uint8)
    pred = jnp.array([[0, 1, 1, 2]], jnp.int8)
    m = sl.confusion_matrix(pred, labels, 3, ignore_index=255)
    np.testing.assert_array_equal(m, np.eye(3, dtype=int))
    m = sl.confusion_matrix(jnp.array([True, False]), jnp.array([True, True]), 2)
    np.testing.assert_array_equal(m, [[0, 0], [1, 1]])


def test_confusion_matrix_broadcast_where_and_jit_vmap():
    rng = np.random.default_rng(1)
    labels = jnp.asarray(rng.integers(0, 3, (4, 5, 6)))
    pred = jnp.asarray(rng.integers(0, 3, (4, 5, 6)))
    where = jnp.asarray(rng.random((5, 6)) > 0.5)  # broadcast over the batch
    f = functools.partial(sl.confusion_matrix, num_classes=3)
    eager = f(pred, labels, where=where)
    np.testing.assert_array_equal(jax.jit(f)(pred, labels, where=where), eager)
    np.testing.assert_array_equal(eager, ref.confusion_matrix(pred, labels, 3, where))
    per_image = jax.vmap(lambda p, y: f(p, y))(pred, labels)
    np.testing.assert_array_equal(per_image.sum(0), f(pred, labels))
    for b in range(4):
        np.testing.assert_array_equal(per_image[b], ref.confusion_matrix(pred[b], labels[b], 3))


def test_integer_where_counts_nonzero_pixels():
    # The losses' rule: `where` may be bool or integer, non-zero = counted.
    labels = jnp.array([[0, 1, 1, 2, 2, 0]])
    pred = jnp.array([[0, 1, 0, 2, 1, 1]])
    where = jnp.array([[1, 0, 2, -1, 0, 7]], jnp.int32)
    expected = ref.confusion_matrix(pred, labels, 3, np.asarray(where) != 0)
    np.testing.assert_array_equal(sl.confusion_matrix(pred, labels, 3, where=where), expected)
    np.testing.assert_array_equal(
        sl.confusion_matrix(pred, labels, 3, where=where.astype(jnp.uint8) > 0), expected)
    np.testing.assert_array_equal(
        sl.inverse_frequency_weights(labels, 3, where=where),
        sl.inverse_frequency_weights(labels, 3, where=where != 0))
    with pytest.raises(TypeError, match="where"):
        sl.inverse_frequency_weights(labels, 3, where=where.astype(jnp.float32))


def test_confusion_matrix_out_of_range_not_counted_and_reported():
    labels, pred = jnp.array([0, 1, 7, 1]), jnp.array([0, -1, 1, 1])
    np.testing.assert_array_equal(sl.confusion_matrix(pred, labels, 2), [[1, 0], [0, 1]])
    checked = checkify.checkify(jax.jit(functools.partial(sl.confusion_matrix, num_classes=2)))
    err, _ = checked(pred, labels)
    with pytest.raises(checkify.JaxRuntimeError, match="labels"):
        err.throw()
    err, _ = checked(jnp.array([0, 1]), jnp.array([0, 1]))
    err.throw()


def test_confusion_matrix_errors():
    y = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(TypeError, match="pred_labels"):
        sl.confusion_matrix(y.astype(jnp.float32), y, 2)
    with pytest.raises(TypeError, match="labels"):
        sl.confusion_matrix(y, y.astype(jnp.float32), 2)
    with pytest.raises(ValueError, match="shape"):
        sl.confusion_matrix(y[:, :2], y, 2)
    with pytest.raises(ValueError, match="num_classes"):
        sl.confusion_matrix(y, y, 1)
    with pytest.raises(TypeError, match="num_classes"):
        sl.confusion_matrix(y, y, 2.0)
    with pytest.raises(TypeError, match="where"):
        sl.confusion_matrix(y, y, 2, where=y.astype(jnp.float32))  # a weight map, not a mask
    with pytest.raises(ValueError, match="where"):
        sl.confusion_matrix(y, y, 2, where=jnp.ones((3, 3), bool))
    with pytest.raises(TypeError, match="ignore_index"):
        sl.confusion_matrix(y, y, 2, ignore_index=2.5)


# ----------------------------------------------------------------------------- IoU and Dice


@jax.jit
def _scores(pred, labels):
    """IoU, Dice and their means, one compiled program for every seed."""
    iou = sl.iou_score(pred, labels, 4, ignore_index=255)
    dice = sl.dice_score(pred, labels, 4, ignore_index=255)
    return iou, dice, sl.mean_score(iou), sl.mean_score(dice, include_background=False)


@pytest.mark.parametrize("seed", range(3))
def test_iou_and_dice_match_reference(seed):
    rng = np.random.default_rng(seed)
    c = 4
    labels = random_labels(rng, (2, 6, 5), 3, ignore=255)  # class 3 never a target
    pred = rng.integers(0, 3, (2, 6, 5))  # ... nor predicted: NaN
    pred[0, 0, 0] = 2
    iou, dice, mean_iou, mean_dice = _scores(jnp.asarray(pred), jnp.asarray(labels))
    ref_iou, ref_dice = ref.iou_dice_scores(ref.confusion_matrix(pred, labels, c, None, 255))
    assert np.isnan(iou[3]) and np.isnan(dice[3])
    np.testing.assert_allclose(iou, ref_iou, rtol=1e-6)
    np.testing.assert_allclose(dice, ref_dice, rtol=1e-6)
    np.testing.assert_allclose(mean_iou, np.nanmean(ref_iou), rtol=1e-6)
    np.testing.assert_allclose(mean_dice, np.nanmean(ref_dice[1:]), rtol=1e-6)


def test_scores_hand_worked():
    # target 0 0 1 1 ; prediction 0 1 1 1: class 0 tp=1 fn=1; class 1 tp=2 fp=1.
    labels, pred = jnp.array([[0, 0, 1, 1]]), jnp.array([[0, 1, 1, 1]])
    iou, dice, perfect, only_predicted = jax.jit(lambda pred, labels: (  # one program
        sl.iou_score(pred, labels, 2), sl.dice_score(pred, labels, 2),
        sl.iou_score(labels, labels, 3), sl.iou_score(jnp.array([2, 0]), jnp.array([0, 0]), 3)))(
        pred, labels)
    np.testing.assert_allclose(iou, [1 / 2, 2 / 3], rtol=1e-6)
    np.testing.assert_allclose(dice, [2 / 3, 4 / 5], rtol=1e-6)
    # Perfect prediction: 1 for present classes, NaN for absent ones.
    np.testing.assert_array_equal(perfect, [1, 1, np.nan])
    # A class only predicted (false positives only) scores 0, not NaN.
    np.testing.assert_array_equal(only_predicted, [0.5, np.nan, 0])


def test_scores_from_batched_confusion():
    rng = np.random.default_rng(3)
    labels, pred = rng.integers(0, 3, (4, 9)), rng.integers(0, 3, (4, 9))
    cms = jax.vmap(functools.partial(sl.confusion_matrix, num_classes=3))(
        jnp.asarray(pred), jnp.asarray(labels))
    iou = sl.iou_from_confusion(cms)
    assert iou.shape == (4, 3)
    for b in range(4):
        expected = ref.iou_dice_scores(ref.confusion_matrix(pred[b], labels[b], 3))[0]
        np.testing.assert_allclose(iou[b], expected, rtol=1e-6)
    assert sl.mean_score(iou).shape == (4,)
    with pytest.raises(ValueError, match="confusion"):
        sl.iou_from_confusion(jnp.ones((3, 2)))


def test_mean_score_all_nan_and_scalar_error():
    assert np.isnan(sl.mean_score(jnp.array([jnp.nan, jnp.nan])))
    with pytest.raises(ValueError, match="scores"):
        sl.mean_score(jnp.float32(1.0))


# ----------------------------------------------------------------------------- streaming


def test_streaming_equals_whole_set_not_mean_of_batches():
    rng = np.random.default_rng(4)
    c = 3
    batches = []
    for size in (1, 4, 2):  # unequal batches: a mean of batch scores would differ
        labels = random_labels(rng, (size, 5, 4), c, ignore=255)
        batches.append((rng.integers(0, c, (size, 5, 4)), labels))
    update = jax.jit(sl.ConfusionMatrixMetric.update, static_argnames="ignore_index")
    state = sl.ConfusionMatrixMetric.init(c)
    for pred, labels in batches:
        state = update(state, jnp.asarray(pred), jnp.asarray(labels), ignore_index=255)
    all_pred = np.concatenate([p.ravel() for p, _ in batches])
    all_labels = np.concatenate([y.ravel() for _, y in batches])
    m = ref.confusion_matrix(all_pred, all_labels, c, None, 255)
    out = state.compute()
    np.testing.assert_array_equal(state.counts(), m)
    ref_iou, ref_dice = ref.iou_dice_scores(m)
    np.testing.assert_allclose(out["iou"], ref_iou, rtol=1e-6)
    np.testing.assert_allclose(out["dice"], ref_dice, rtol=1e-6)
    np.testing.assert_allclose(out["mean_iou"], np.nanmean(ref_iou), rtol=1e-6)
    np.testing.assert_allclose(out["accuracy"], np.trace(m) / m.sum(), rtol=1e-6)


def test_streaming_in_scan_and_merge():
    rng = np.random.default_rng(5)
    pred = jnp.asarray(rng.integers(0, 4, (6, 2, 8)))
    labels = jnp.asarray(rng.integers(0, 4, (6, 2, 8)))

    def step(state, batch):
        return state.update(*batch), None

    state, _ = jax.lax.scan(step, sl.ConfusionMatrixMetric.init(4), (pred, labels))
    np.testing.assert_array_equal(state.counts(), ref.confusion_matrix(pred, labels, 4))
    first = sl.ConfusionMatrixMetric.init(4).update(pred[:3], labels[:3])
    second = sl.ConfusionMatrixMetric.init(4).update(pred[3:], labels[3:])
    np.testing.assert_array_equal(first.merge(second).counts(), state.counts())
    empty = sl.ConfusionMatrixMetric.init(4).compute()
    assert np.all(np.isnan(empty["iou"])) and np.isnan(empty["accuracy"])


def test_streaming_counts_beyond_int32_are_exact():
    with jax.enable_x64(True):
        big = (1 << 30) - 3
        state = sl.ConfusionMatrixMetric(jnp.full((2, 2), 5, jnp.int32),
                                         jnp.full((2, 2), big, jnp.int32))
        state = state.update(jnp.array([0, 0, 0, 1]), jnp.array([0, 0, 0, 0]))
        state = state.merge(state)
        expected = 2 * (np.full((2, 2), 5 * 2**30 + big, np.int64) + [[3, 1], [0, 0]])
        np.testing.assert_array_equal(np.asarray(state.counts(), np.int64), expected)
        assert np.all(np.asarray(state.low) < 2**30) and state.low.dtype == jnp.int32


# ----------------------------------------------------------------------------- class weights


@pytest.mark.parametrize("power", [1.0, 0.5, 2.0])
def test_inverse_frequency_weights_match_reference(power):
    rng = np.random.default_rng(7)
    labels = rng.choice([0, 1, 2, 4, 255], size=(3, 6, 6), p=[0.6, 0.25, 0.1, 0.03, 0.02])
    got = sl.inverse_frequency_weights(jnp.asarray(labels), 5, power=power, ignore_index=255)
    np.testing.assert_allclose(got, ref.inverse_frequency_weights(labels, 5, power, 255), rtol=1e-5)
    present = np.isin(np.arange(5), labels)
    np.testing.assert_allclose(np.mean(np.asarray(got)[present]), 1.0, rtol=1e-6)
    assert got[3] == np.max(got)  # class 3 never occurs: the largest weight


def test_inverse_frequency_weights_edge_cases():
    labels = jnp.array([0, 0, 0, 1])
    rare = jnp.zeros(10**6, jnp.int32).at[0].set(1)
    flat, nothing_counted, w = jax.jit(lambda labels, rare: (  # one compiled program
        sl.inverse_frequency_weights(labels, 3, power=0.0),
        sl.inverse_frequency_weights(labels, 2, where=jnp.zeros(4, bool)),
        sl.inverse_frequency_weights(rare, 2, power=8.0)))(labels, rare)
    np.testing.assert_array_equal(flat, [1, 1, 1])
    np.testing.assert_array_equal(nothing_counted, [1, 1])
    # Extreme imbalance and power stay finite (computed in logs).
    assert np.all(np.isfinite(w)) and w[0] < 1e-20 and np.isclose(w[1], 2.0)
    w = jax.jit(sl.inverse_frequency_weights, static_argnums=1)(labels, 2)
    np.testing.assert_allclose(w, [0.5, 1.5], rtol=1e-6)
    with pytest.raises(ValueError, match="power"):
        sl.inverse_frequency_weights(labels, 2, power=-1.0)


def test_inverse_frequency_weights_are_class_weights():
    rng = np.random.default_rng(8)
    labels = jnp.asarray(rng.integers(0, 3, (2, 4, 4)))
    logits = jnp.asarray(rng.normal(size=(2, 4, 4, 3)), jnp.float32)
    loss = jax.jit(lambda x, y: sl.cross_entropy(  # one compiled program
        x, y, class_weights=sl.inverse_frequency_weights(y, 3)))(logits, labels)
    assert np.isfinite(loss)


# ----------------------------------------------------------------------------- surface distances


def test_surface_matches_scipy_erosion():
    from segloss_jax._src.windows import contour

    rng = np.random.default_rng(9)
    for shape in [(9,), (7, 8), (5, 6, 7)]:
        mask = blob(rng, shape)
        mask.flat[0] = True  # on the border: surface
        surface = jax.jit(contour, static_argnums=1, static_argnames="border_outside")(
            jnp.asarray(mask), mask.ndim, border_outside=True)
        np.testing.assert_array_equal(surface, ref.surface(mask))


@pytest.mark.parametrize("shape,sampling", [
    ((12,), None), ((10, 11), None), ((10, 11), (0.7, 1.9)), ((6, 7, 8), None),
    ((6, 7, 8), (2.0, 1.0, 0.5)),
])
@pytest.mark.parametrize("q", [100.0, 95.0, 50.0, 0.0])
def test_hausdorff_matches_brute_force(shape, sampling, q):
    rng = np.random.default_rng(len(shape) + int(q))
    for _ in range(2):
        a, b = blob(rng, shape, p=0.3), blob(rng, shape, p=0.4)
        got = sl.hausdorff_distance(jnp.asarray(a), jnp.asarray(b), percentile=q,
                                    sampling=sampling)
        np.testing.assert_allclose(got, ref.hausdorff_distance(a, b, q, sampling), rtol=1e-5,
                                   atol=1e-5)


@pytest.mark.parametrize("shape,sampling", [((10, 11), None), ((10, 11), (0.7, 1.9)),
                                            ((6, 7, 8), (2.0, 1.0, 0.5))])
@pytest.mark.parametrize("symmetric", [True, False])
def test_average_surface_distance_matches_brute_force(shape, sampling, symmetric):
    rng = np.random.default_rng(10)
    for _ in range(2):
        a, b = blob(rng, shape, p=0.3), blob(rng, shape, p=0.4)
        got = sl.average_surface_distance(jnp.asarray(a), jnp.asarray(b), symmetric=symmetric,
                                          sampling=sampling)
        np.testing.assert_allclose(got, ref.average_surface_distance(a, b, symmetric, sampling),
                                   rtol=1e-5)


def test_surface_distances_empty_conventions():
    empty = jnp.zeros((5, 5), bool)
    full = jnp.ones((5, 5), bool)
    some = empty.at[2, 2].set(True)
    for f in (sl.hausdorff_distance, sl.average_surface_distance):
        assert np.isnan(f(empty, empty))
        assert f(empty, some) == np.inf and f(some, empty) == np.inf
        assert f(some, some) == 0 and f(full, full) == 0
    # A full mask's surface is the image border.
    np.testing.assert_allclose(sl.hausdorff_distance(some, full),
                               ref.hausdorff_distance(some, full))
    np.testing.assert_allclose(sl.hausdorff_distance(empty, some, percentile=95.0), np.inf)


def test_surface_distances_jit_vmap_and_traced_options():
    rng = np.random.default_rng(11)
    a = np.stack([blob(rng, (9, 10), p=0.3) for _ in range(3)])
    b = np.stack([blob(rng, (9, 10), p=0.3) for _ in range(3)])
    b[2] = False  # one empty pair member in the batch
    hd95 = jax.jit(jax.vmap(functools.partial(sl.hausdorff_distance, percentile=95.0)))
    got = hd95(jnp.asarray(a), jnp.asarray(b))
    expected = [ref.hausdorff_distance(x, y, 95.0) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Percentile and sampling may be traced values.
    f = jax.jit(lambda x, y, q, s: sl.hausdorff_distance(x, y, percentile=q, sampling=s))
    got = f(jnp.asarray(a[0]), jnp.asarray(b[0]), 90.0, jnp.array([1.5, 0.5]))
    np.testing.assert_allclose(got, ref.hausdorff_distance(a[0], b[0], 90.0, (1.5, 0.5)), rtol=1e-5)
    # Per class of one-hot masks: vmap over the last axis.
    labels, pred = rng.integers(0, 3, (9, 10)), rng.integers(0, 3, (9, 10))
    onehot = lambda y: jax.nn.one_hot(y, 3) > 0  # noqa: E731
    per_class = jax.jit(lambda p, y: jax.vmap(sl.average_surface_distance, in_axes=(-1, -1))(
        onehot(p), onehot(y)))(pred, labels)
    expected = [ref.average_surface_distance(pred == k, labels == k) for k in range(3)]
    np.testing.assert_allclose(per_class, expected, rtol=1e-5)


def test_hausdorff_float64_sampling_under_x64():
    rng = np.random.default_rng(12)
    a, b = blob(rng, (8, 9), p=0.3), blob(rng, (8, 9), p=0.4)
    with jax.enable_x64(True):
        sampling = jnp.array([0.3, 1.7], jnp.float64)
        got = sl.hausdorff_distance(jnp.asarray(a), jnp.asarray(b), percentile=95.0,
                                    sampling=sampling)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, ref.hausdorff_distance(a, b, 95.0, (0.3, 1.7)), rtol=1e-12)
        # NumPy float64 spacing (static) asks for float64 as well; Python floats do not.
        host = sl.hausdorff_distance(jnp.asarray(a), jnp.asarray(b), percentile=95.0,
                                     sampling=np.array([0.3, 1.7]))
        assert host.dtype == jnp.float64
        np.testing.assert_array_equal(host, got)
        assert sl.average_surface_distance(a, b, sampling=(0.3, 1.7)).dtype == jnp.float32


def test_surface_distance_errors():
    a = jnp.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="shape"):
        sl.hausdorff_distance(a, a[:3])
    with pytest.raises(ValueError, match="mask"):
        sl.hausdorff_distance(jnp.zeros((2, 2, 2, 2), bool), jnp.zeros((2, 2, 2, 2), bool))
    with pytest.raises(ValueError, match="percentile"):
        sl.hausdorff_distance(a, a, percentile=101.0)
    with pytest.raises(ValueError, match="sampling"):
        sl.average_surface_distance(a, a, sampling=(1.0, 0.0))
    with pytest.raises(ValueError, match="sampling"):
        sl.average_surface_distance(a, a, sampling=(1.0, 1.0, 1.0))
    # NumPy values are host values: static, so checked (not traced past the check).
    with pytest.raises(ValueError, match="sampling"):
        sl.hausdorff_distance(a, a, sampling=np.array([1.0, 0.0]))
