"""``blob_loss`` against the float64 NumPy reference of ``reference.py``, which follows
neuronflow/blob_loss's loops over images and instances."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.experimental import checkify
from jax.test_util import check_grads

import segloss_jax as sl

COMBOS = [(loss, mask) for loss in ("dice", "bce", "dice_bce")
          for mask in ("logits", "probabilities")]


def case(seed, shape=(3, 9, 8)):
    """Logits ``[B, *spatial, 1]``, instance ids (not consecutive: 3, 7, 12, 40), 255 for
    ignored elements, a ``where`` mask; the last image has no instance."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(*shape, 1))
    ids = rng.choice([0, 0, 0, 3, 7, 12, 40], size=shape)
    ids[-1] = 0
    ids = np.where(rng.random(shape) < 0.1, 255, ids)
    where = rng.random(shape) > 0.1
    return x, ids, where


def all_combos(x, ids, where, **kwargs):
    """Every (loss, mask) pair in float64, one compilation."""
    def fn(x, ids, where):
        return [sl.blob_loss(x, ids, loss=loss, mask=mask, where=where, ignore_index=255,
                             max_instances=4, **kwargs) for loss, mask in COMBOS]

    with jax.enable_x64(True):
        return [float(v) for v in jax.jit(fn)(jnp.asarray(x), jnp.asarray(ids),
                                              jnp.asarray(where))]


@pytest.mark.parametrize("shape", [(3, 9, 8), (2, 17), (2, 4, 5, 3)], ids=["2d", "1d", "3d"])
def test_matches_reference(shape):
    x, ids, where = case(0, shape)
    valid = where & (ids != 255)
    got = all_combos(x, ids, where, alpha=1.5, beta=0.7, smooth=(0.5, 1e-3))
    for value, (loss, mask) in zip(got, COMBOS, strict=True):
        expected = ref.blob_loss(x, np.where(valid, ids, 0), valid, loss=loss, mask=mask,
                                 alpha=1.5, beta=0.7, smooth=(0.5, 1e-3))
        np.testing.assert_allclose(value, expected, rtol=1e-10, err_msg=f"{loss}, {mask}")


def test_no_instance_leaves_the_global_term():
    x, _, _ = case(1)
    zeros = np.zeros(x.shape[:-1], int)
    global_dice = ref.blob_loss(x, zeros, np.ones(zeros.shape, bool), alpha=1.0, beta=0.0)
    got = jax.jit(lambda a: sl.blob_loss(a, zeros, max_instances=1))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(got, 2 * global_dice,
                               rtol=1e-6)


def test_max_instances_from_concrete_labels_and_its_bound():
    x, ids, _ = case(2)
    x = jnp.asarray(x, jnp.float32)
    eager = sl.blob_loss(x, ids, ignore_index=255)  # counted on the host: 4 ids
    jitted = jax.jit(lambda a, b: sl.blob_loss(a, b, ignore_index=255, max_instances=6))
    np.testing.assert_allclose(jitted(x, ids), eager, rtol=1e-6)
    checked = checkify.checkify(
        jax.jit(lambda a, b: sl.blob_loss(a, b, ignore_index=255, max_instances=3)))
    err, _ = checked(x, ids)
    with pytest.raises(checkify.JaxRuntimeError, match="more than `max_instances` = 3"):
        err.throw()
    with pytest.raises(TypeError, match="`max_instances` must be given when `labels` is traced"):
        jax.jit(sl.blob_loss)(x, ids)


def test_gradients():
    x, ids, where = case(3, shape=(2, 6, 5))
    ids = np.where(ids == 255, 0, ids)
    with jax.enable_x64(True):
        for loss, mask in (("dice_bce", "logits"), ("dice", "probabilities")):
            check_grads(jax.jit(lambda z, loss=loss, mask=mask: sl.blob_loss(
                z, jnp.asarray(ids), where=jnp.asarray(where), loss=loss, mask=mask,
                max_instances=4)), (jnp.asarray(x),), order=1, modes=["rev"])


def test_axis_name_gives_the_global_batch():
    x, ids, _ = case(4, shape=(4, 7, 6))
    x = jnp.asarray(x, jnp.float32)
    kwargs = {"loss": "dice_bce", "ignore_index": 255, "max_instances": 4}
    full = jax.jit(lambda a, b: sl.blob_loss(a, b, **kwargs))(x, ids)
    mapped = jax.jit(jax.vmap(lambda a, b: sl.blob_loss(a[None], b[None], axis_name="i",
                                                        **kwargs), axis_name="i"))(x, ids)
    np.testing.assert_allclose(mapped, np.full(4, full), rtol=1e-5)


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"loss": "focal"}, ValueError, r"`loss` must be one of \('dice', 'bce', 'dice_bce'\)"),
    ({"mask": "labels"}, ValueError, r"`mask` must be one of \('logits', 'probabilities'\)"),
    ({"max_instances": 0}, ValueError, r"`max_instances` must be a positive int, got 0"),
    ({"reduction": "sum"}, ValueError, r"`reduction` must be one of \('mean',\)"),
    ({"smooth": (1.0, 2.0, 3.0)}, ValueError, r"`smooth` must be a non-negative scalar or a pair"),
])
def test_bad_arguments(kwargs, exc, match):
    x, ids, _ = case(5)
    with pytest.raises(exc, match=match):
        sl.blob_loss(jnp.asarray(x), ids, **kwargs)


def test_bad_inputs():
    x, ids, _ = case(6)
    with pytest.raises(ValueError, match=r"`blob_loss` is binary: `logits` must have C == 1"):
        sl.blob_loss(jnp.zeros((*ids.shape, 2)), ids)
    with pytest.raises(ValueError, match=r"takes integer instance ids .*got dense labels"):
        sl.blob_loss(jnp.asarray(x), jnp.zeros(x.shape))
