"""Surface Dice and calibration error against float64 NumPy/scipy references.

The references (``tests/reference.py``) are written from the formulas: scipy's
erosion and distance transform for the surfaces, explicit loops over the bins for
the calibration error.
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
from jax.experimental import checkify
from test_metrics import blob, random_labels

import segloss_jax as sl

# ----------------------------------------------------------------------------- surface Dice

SURFACE_CASES = [((10, 11), None), ((10, 11), (0.7, 1.9)), ((6, 7, 8), None),
                 ((6, 7, 8), (2.0, 1.0, 0.5))]


@pytest.mark.parametrize("shape,sampling", SURFACE_CASES)
@pytest.mark.parametrize("tolerance", [0.0, 1.0, 2.5, 100.0])
def test_surface_dice_matches_brute_force(shape, sampling, tolerance):
    rng = np.random.default_rng(len(shape) + int(tolerance))
    for _ in range(2):
        a, b = blob(rng, shape, p=0.3), blob(rng, shape, p=0.4)
        got = sl.surface_dice(jnp.asarray(a), jnp.asarray(b), tolerance=tolerance,
                              sampling=sampling)
        np.testing.assert_allclose(got, ref.surface_dice(a, b, tolerance, sampling), rtol=1e-6)
        if tolerance == 100.0:
            assert got == 1.0


def test_surface_dice_hand_worked():
    # a: a 2×2 square (4 surface elements) inside b, a 2×4 bar (8 surface elements).
    a = jnp.zeros((6, 6), bool).at[1:3, 1:3].set(True)
    b = jnp.zeros((6, 6), bool).at[1:3, 1:5].set(True)
    # τ = 0: all of a lies on b's surface, half of b on a's: (4 + 4) / 12.
    np.testing.assert_allclose(sl.surface_dice(a, b, tolerance=0.0), 8 / 12)
    # τ = 1: b's column 3 joins: (4 + 6) / 12; with spacing 0.5 along columns, column 4 too.
    np.testing.assert_allclose(sl.surface_dice(a, b, tolerance=1.0), 10 / 12)
    np.testing.assert_allclose(sl.surface_dice(a, b, tolerance=1.0, sampling=(1.0, 0.5)), 1.0)
    # Symmetric in its two masks.
    np.testing.assert_allclose(sl.surface_dice(b, a, tolerance=1.0), 10 / 12)


def test_surface_dice_empty_identical_and_mask_dtypes():
    empty = jnp.zeros((5, 6), bool)
    some = empty.at[1:3, 2:5].set(True)
    full = jnp.ones((5, 6), bool)
    assert np.isnan(sl.surface_dice(empty, empty, tolerance=1.0))
    assert sl.surface_dice(empty, some, tolerance=1e6) == 0
    assert sl.surface_dice(some, empty, tolerance=1e6) == 0
    for m in (some, full):
        assert sl.surface_dice(m, m, tolerance=0.0) == 1
    # A full mask's surface is the image border.
    np.testing.assert_allclose(sl.surface_dice(some, full, tolerance=1.0),
                               ref.surface_dice(some, full, 1.0))
    # 0/1 integer masks as users write them.
    as_int = sl.surface_dice(some.astype(jnp.int32), full.astype(jnp.uint8), tolerance=1.0)
    np.testing.assert_array_equal(as_int, sl.surface_dice(some, full, tolerance=1.0))


def test_surface_dice_jit_vmap_and_traced_options():
    rng = np.random.default_rng(3)
    a = np.stack([blob(rng, (9, 10), p=0.3) for _ in range(4)])
    b = np.stack([blob(rng, (9, 10), p=0.4) for _ in range(4)])
    b[2] = False  # one empty: 0
    a[3] = b[3] = False  # both empty: NaN
    nsd = jax.jit(jax.vmap(functools.partial(sl.surface_dice, tolerance=1.5)))
    got = nsd(jnp.asarray(a), jnp.asarray(b))
    expected = [ref.surface_dice(x, y, 1.5) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Tolerance and sampling may be traced.
    f = jax.jit(lambda x, y, t, s: sl.surface_dice(x, y, tolerance=t, sampling=s))
    got = f(jnp.asarray(a[0]), jnp.asarray(b[0]), 2.0, jnp.array([1.5, 0.5]))
    np.testing.assert_allclose(got, ref.surface_dice(a[0], b[0], 2.0, (1.5, 0.5)), rtol=1e-6)


def test_surface_dice_errors():
    a = jnp.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="tolerance"):
        sl.surface_dice(a, a, tolerance=-1.0)
    with pytest.raises(ValueError, match="shape"):
        sl.surface_dice(a, a[:3], tolerance=1.0)
    with pytest.raises(ValueError, match="mask"):
        sl.surface_dice(jnp.zeros((2,) * 4, bool), jnp.zeros((2,) * 4, bool), tolerance=1.0)
    with pytest.raises(ValueError, match="sampling"):
        sl.surface_dice(a, a, tolerance=1.0, sampling=(1.0, -1.0))
    with pytest.raises(TypeError, match="tolerance"):
        sl.surface_dice(a, a)  # keyword-only and required


# ----------------------------------------------------------------------------- calibration


def random_probs(rng, shape, c, temperature=1.0):
    x = rng.normal(size=(*shape, c)) * 2 / temperature
    return np.asarray(jax.nn.softmax(x, -1) if c > 1 else jax.nn.sigmoid(x))


@pytest.mark.parametrize("c", [1, 4])
@pytest.mark.parametrize("norm", ["l1", "max"])
@pytest.mark.parametrize("num_bins", [1, 15])
def test_calibration_error_matches_reference(c, norm, num_bins):
    rng = np.random.default_rng(c + num_bins)
    probs = random_probs(rng, (2, 6, 7), c)
    labels = rng.integers(0, max(c, 2), (2, 6, 7))
    got = sl.calibration_error(jnp.asarray(probs), labels, num_bins=num_bins, norm=norm)
    np.testing.assert_allclose(got, ref.calibration_error(probs, labels, num_bins, norm),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm", ["l1", "max"])
def test_calibration_error_where_and_ignore_index(norm):
    rng = np.random.default_rng(5)
    probs = random_probs(rng, (3, 5, 6), 3)
    labels = rng.integers(0, 3, (3, 5, 6))
    labels = np.where(rng.random(labels.shape) < 0.2, 255, labels)
    where = rng.random((3, 5, 6)) < 0.7
    valid = where & (labels != 255)
    got = sl.calibration_error(jnp.asarray(probs), labels, num_bins=8, norm=norm, where=where,
                               ignore_index=255)
    np.testing.assert_allclose(got, ref.calibration_error(probs, labels, 8, norm, valid),
                               rtol=1e-5, atol=1e-6)
    # Excluded pixels do not matter; an integer `where` counts its non-zero pixels.
    scrambled = np.where(valid[..., None], probs, rng.random(probs.shape))
    again = sl.calibration_error(jnp.asarray(scrambled), labels, num_bins=8, norm=norm,
                                 where=where.astype(np.int32) * 3, ignore_index=255)
    np.testing.assert_allclose(again, got, rtol=1e-6)
    # 3D spatial, float64 stays float64 under x64.
    with jax.enable_x64(True):
        got64 = sl.calibration_error(jnp.asarray(probs[:, None], jnp.float64), labels[:, None],
                                     num_bins=8, norm=norm, where=where[:, None],
                                     ignore_index=255)
        assert got64.dtype == jnp.float64
        np.testing.assert_allclose(got64, ref.calibration_error(probs, labels, 8, norm, valid),
                                   rtol=1e-12)


def test_calibration_error_bin_edges():
    # n = 4: edges 0.25, 0.5, 0.75 are exact; k/n goes to bin k − 1, 0 to bin 0.
    conf = np.array([0.0, 0.25, 0.5, 0.5, 0.75, 1.0])
    probs = np.stack([conf, 1 - conf], -1)[None]  # class 0 is the arg max where conf >= 0.5
    labels = np.array([[0, 0, 0, 1, 0, 0]])
    got = sl.calibration_error(jnp.asarray(probs, jnp.float32), labels, num_bins=4)
    np.testing.assert_allclose(got, ref.calibration_error(probs, labels, 4), rtol=1e-6)
    # By hand: top confidences max(c, 1 − c) = 1, .75, .5, .5, .75, 1 go to bins 3, 2, 1, 1,
    # 2, 3 (an edge value to the lower bin); predictions 1, 1, 0, 0, 0, 0 (the arg max of
    # [.5, .5] is class 0), correct F, F, T, F, T, T. Bin 1: conf .5, acc 1/2, gap 0;
    # bin 2: conf .75, acc 1/2, gap .25; bin 3: conf 1, acc 1/2, gap .5.
    np.testing.assert_allclose(got, (2 * 0.25 + 2 * 0.5) / 6, rtol=1e-6)
    np.testing.assert_allclose(sl.calibration_error(probs, labels, num_bins=4, norm="max"), 0.5)
    # A binary confidence of exactly 0.5 sits at the first edge of n = 2: bin 0.
    p = jnp.array([[[0.5], [1.0]]])
    y = jnp.array([[1, 1]])
    # bin 0: conf .5, the prediction p > 0.5 is 0, wrong: gap .5; bin 1: conf 1, right.
    np.testing.assert_allclose(sl.calibration_error(p, y, num_bins=2), 0.25)
    # A zero confidence (only possible with unnormalised inputs) is in bin 0.
    np.testing.assert_allclose(
        sl.calibration_error(jnp.zeros((1, 2, 2)), jnp.array([[0, 1]]), num_bins=3, norm="max"),
        0.5)


def test_calibration_error_empty_is_nan_and_jit():
    probs = jnp.full((1, 3, 2), 0.5)
    labels = jnp.array([[0, 1, 255]])
    for norm in ("l1", "max"):
        assert np.isnan(sl.calibration_error(probs, labels, norm=norm,
                                             where=jnp.zeros((1, 3), bool)))
        assert np.isnan(sl.calibration_error(probs[:, 2:], labels[:, 2:], norm=norm,
                                             ignore_index=255))
    rng = np.random.default_rng(6)
    probs = random_probs(rng, (2, 5, 5), 3)
    labels = rng.integers(0, 3, (2, 5, 5))
    f = jax.jit(sl.calibration_error, static_argnames=("num_bins", "norm"))
    np.testing.assert_allclose(f(probs, labels, num_bins=7, norm="max"),
                               ref.calibration_error(probs, labels, 7, "max"), rtol=1e-5)
    # bf16 probabilities are binned in float32.
    bf16 = jnp.asarray(probs, jnp.bfloat16)
    got = sl.calibration_error(bf16, labels)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref.calibration_error(np.asarray(bf16, np.float64), labels,
                                                          15), rtol=1e-5)


def test_calibration_error_label_check_under_checkify():
    probs = jnp.full((1, 2, 3), 1 / 3)
    checked = checkify.checkify(functools.partial(sl.calibration_error, ignore_index=255))
    err, _ = checked(probs, jnp.array([[0, 255]]))
    err.throw()  # the ignored value is fine
    err, _ = checked(probs, jnp.array([[0, 3]]))
    with pytest.raises(checkify.JaxRuntimeError, match="labels"):
        err.throw()


def test_calibration_error_errors():
    probs, labels = jnp.full((1, 4, 2), 0.5), jnp.zeros((1, 4), jnp.int32)
    with pytest.raises(ValueError, match="num_bins"):
        sl.calibration_error(probs, labels, num_bins=0)
    with pytest.raises(TypeError, match="num_bins"):
        sl.calibration_error(probs, labels, num_bins=2.0)
    with pytest.raises(ValueError, match="norm"):
        sl.calibration_error(probs, labels, norm="l2")
    with pytest.raises(TypeError, match="probs"):
        sl.calibration_error(jnp.ones((1, 4, 2), jnp.int32), labels)
    with pytest.raises(TypeError, match="labels"):
        sl.calibration_error(probs, jnp.zeros((1, 4), jnp.float32))
    with pytest.raises(ValueError, match="labels"):
        sl.calibration_error(probs, jnp.zeros((1, 5), jnp.int32))
    with pytest.raises(ValueError, match="probs"):
        sl.calibration_error(jnp.full((4, 2), 0.5), labels[0])
    with pytest.raises(ValueError, match="where"):
        sl.calibration_error(probs, labels, where=jnp.ones((2, 4), bool))


def test_streaming_calibration_equals_whole_set():
    rng = np.random.default_rng(8)
    probs = random_probs(rng, (4, 5, 6), 3)
    labels = random_labels(rng, (4, 5, 6), 3, ignore=255)
    update = jax.jit(sl.CalibrationErrorMetric.update, static_argnames="ignore_index")
    state = sl.CalibrationErrorMetric.init(10)
    for i in range(0, 4, 2):  # batches of two images
        state = update(state, probs[i:i + 2], labels[i:i + 2], ignore_index=255)
    valid = labels != 255
    out = state.compute()
    for norm, key in (("l1", "ece"), ("max", "mce")):
        np.testing.assert_allclose(out[key], ref.calibration_error(probs, labels, 10, norm, valid),
                                   rtol=1e-5)
    # The reliability diagram, bin by bin.
    conf, correct = probs.max(-1)[valid], (probs.argmax(-1) == labels)[valid]
    index = np.clip(np.ceil(conf * 10).astype(int) - 1, 0, 9)
    np.testing.assert_array_equal(out["count"], np.bincount(index, minlength=10))
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(
            out["accuracy"], np.bincount(index, correct, 10) / np.bincount(index, minlength=10),
            rtol=1e-6)
        np.testing.assert_allclose(
            out["confidence"], np.bincount(index, conf, 10) / np.bincount(index, minlength=10),
            rtol=1e-6)
    # Merging two halves gives the same state; an empty state computes NaN.
    halves = [sl.CalibrationErrorMetric.init(10).update(probs[i:i + 2], labels[i:i + 2],
                                                        ignore_index=255) for i in (0, 2)]
    merged = halves[0].merge(halves[1])
    np.testing.assert_array_equal(merged.counts(), state.counts())
    np.testing.assert_allclose(merged.confidence, state.confidence, rtol=1e-6)
    assert np.isnan(sl.CalibrationErrorMetric.init(3).compute()["ece"])
    with pytest.raises(ValueError, match="num_bins"):
        sl.CalibrationErrorMetric.init(0)


def test_streaming_calibration_counts_beyond_int32_are_exact():
    state = sl.CalibrationErrorMetric.init(2)
    # States holding counts near the int32 limit, merged.
    part = sl.CalibrationErrorMetric(*_split([[2**31 - 1, 5], [2**31 - 1, 0]]), jnp.zeros(2))
    total = part.merge(part).merge(state)
    high, low = np.asarray(total.high, np.int64), np.asarray(total.low, np.int64)
    np.testing.assert_array_equal(high * 2**30 + low,
                                  [[2 * (2**31 - 1), 10], [2 * (2**31 - 1), 0]])
    np.testing.assert_allclose(total.counts()[0], [2 * (2**31 - 1), 10], rtol=1e-7)


def _split(counts):
    counts = np.asarray(counts, np.int64)
    return jnp.asarray(counts >> 30, jnp.int32), jnp.asarray(counts & (2**30 - 1), jnp.int32)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), c=st.sampled_from([1, 3]), num_bins=st.sampled_from([1, 15]),
       temperature=st.floats(0.1, 10.0))
def test_calibration_error_properties(seed, c, num_bins, temperature):
    rng = np.random.default_rng(seed)
    probs = jnp.asarray(random_probs(rng, (2, 4, 3), c, temperature))
    labels = rng.integers(0, max(c, 2), (2, 4, 3))
    ece = sl.calibration_error(probs, labels, num_bins=num_bins)
    mce = sl.calibration_error(probs, labels, num_bins=num_bins, norm="max")
    assert 0 <= ece <= 1 + 1e-6
    assert mce >= ece - 1e-6 and mce <= 1 + 1e-6
    # Perfect, fully confident predictions: zero error.
    perfect = jax.nn.one_hot(labels, c) if c > 1 else labels[..., None].astype(jnp.float32)
    for norm in ("l1", "max"):
        assert sl.calibration_error(perfect, labels, num_bins=num_bins, norm=norm) == 0
