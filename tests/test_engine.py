"""The statistics behind the losses: unit sums (``stats.py``), the soft counts of the
region engine (``engine.Sums``) and the reductions (``reduce.py``).

The engine's fused ``custom_vjp`` is checked loss by loss in ``test_region.py``
(gradient equal to autodiff of the plain formula, finite differences,
hyperparameter gradients); the ``axis_name`` paths in ``test_distributed.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref

from segloss_jax._src import reduce, stats
from segloss_jax._src.engine import Sums

# ------------------------------------------------------------- soft counts per unit


def soft_counts(p, g, valid, per_image, axis_name=None):
    """``(tp, fp, fn)`` per unit, as the region engine forms them from the unit sums."""
    tp, sum_p, sum_g = stats.unit_sums(p * g, p, g, valid=valid, per_image=per_image,
                                       axis_name=axis_name)
    s = Sums({"tp": tp, "sum_p": sum_p, "sum_g": sum_g})
    return s.tp, s.fp, s.fn


def random_probs(seed, shape=(4, 5, 3), c=3):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(c), size=shape)
    g = np.eye(c)[rng.integers(0, c, size=shape)]
    valid = rng.random(shape) > 0.25
    return p, g, valid


@pytest.mark.parametrize("per_image", [True, False])
def test_soft_counts_match_reference(per_image):
    p, g, valid = random_probs(0)
    with jax.enable_x64(True):
        got = soft_counts(jnp.asarray(p), jnp.asarray(g), jnp.asarray(valid), per_image)
        expected = ref.soft_counts(p, g, valid, per_image)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        assert got[0].shape == ((4, 3) if per_image else (3,))


def test_unit_sums_ignore_non_finite_values_at_invalid_pixels():
    p, g, valid = random_probs(1)
    p = np.where(valid[..., None], p, np.nan)
    got = soft_counts(jnp.asarray(p), jnp.asarray(g), jnp.asarray(valid), per_image=False)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in got)


# ------------------------------------------------------------------ reductions


def test_safe_div_value_and_gradient():
    np.testing.assert_allclose(reduce.safe_div(jnp.array(3.0), jnp.array(2.0)), 1.5)
    assert reduce.safe_div(jnp.array(3.0), jnp.array(0.0), 7.0) == 7.0
    grad = jax.grad(lambda n, d: reduce.safe_div(n, d, 1.0), argnums=(0, 1))(0.0, 0.0)
    assert grad == (0.0, 0.0)


def test_safe_pow_value_and_gradient():
    base = jnp.array([0.0, 0.25, 4.0])
    np.testing.assert_allclose(reduce.safe_pow(base, 0.5), [0.0, 0.5, 2.0], rtol=1e-6)
    np.testing.assert_array_equal(reduce.safe_pow(base, 0.0), [1.0, 1.0, 1.0])  # 0 ** 0 = 1
    # d/db b^0.5 = 0.5 b^-0.5: 1 at 0.25, 0.25 at 4; finite (zero) at b = 0, not inf/NaN.
    grad = jax.grad(lambda b: jnp.sum(reduce.safe_pow(b, 0.5)))(base)
    np.testing.assert_allclose(grad, [0.0, 1.0, 0.25], rtol=1e-6)
    grad = jax.grad(lambda b: jnp.sum(reduce.safe_pow(b, 0.0)))(base)
    np.testing.assert_array_equal(grad, [0.0, 0.0, 0.0])


def test_reduce_pixels():
    loss = jnp.array([[1.0, 2.0, 3.0]])
    valid = jnp.array([[True, False, True]])
    assert reduce.reduce_pixels(loss, valid, "mean") == 2.0
    assert reduce.reduce_pixels(loss, valid, "sum") == 4.0
    np.testing.assert_array_equal(reduce.reduce_pixels(loss, valid, "none"), [[1, 0, 3]])
    # Per-element losses average over valid elements.
    elementwise = jnp.ones((1, 3, 2))
    assert reduce.reduce_pixels(elementwise, valid, "mean") == 1.0
    assert reduce.reduce_pixels(elementwise, valid, "sum") == 4.0
    assert reduce.reduce_pixels(loss, jnp.zeros_like(valid), "mean") == 0.0


def test_kept_units():
    target_sum = jnp.array([[5.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    keep = reduce.kept_units(target_sum, include_background=False, classes="present")
    np.testing.assert_array_equal(keep, [[False, False, True], [False, False, False]])
    keep = reduce.kept_units(target_sum, include_background=True, classes="all")
    assert np.all(keep)
    # With one channel the channel is the foreground and is never dropped.
    keep = reduce.kept_units(jnp.array([0.0]), include_background=False, classes="all")
    np.testing.assert_array_equal(keep, [True])


def test_reduce_units_hand_worked():
    loss = jnp.array([[0.2, 0.4, 0.6], [0.1, 0.3, 0.5]])
    keep = jnp.array([[True, False, True], [False, False, False]])
    w = jnp.array([1.0, 2.0, 3.0])
    # Image 0: (1*0.2 + 3*0.6) / 4 = 0.5; image 1 kept nothing and leaves the mean.
    np.testing.assert_allclose(reduce.reduce_units(loss, keep, reduction="mean",
                                                   class_weights=w), 0.5)
    np.testing.assert_allclose(reduce.reduce_units(loss, keep, reduction="sum",
                                                   class_weights=w), 2.0)
    np.testing.assert_allclose(reduce.reduce_units(loss, keep, reduction="none"),
                               [[0.2, 0, 0.6], [0, 0, 0]])
    # Batch units [C]: weighted mean over kept classes.
    np.testing.assert_allclose(reduce.reduce_units(loss[0], keep[0], reduction="mean"), 0.4)
    # Nothing kept anywhere: 0, with zero gradient.
    none = jnp.zeros_like(keep)
    value, grad = jax.value_and_grad(
        lambda l: reduce.reduce_units(l, none, reduction="mean"))(loss)
    assert value == 0 and np.all(grad == 0)
