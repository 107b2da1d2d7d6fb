"""``deep_supervision`` against a float64 NumPy resampling reference."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from test_contract import CONTRACT_KWARGS, REQUIRED_VALUES

import segloss_jax as sl
from segloss_jax._src.helpers import nearest_exact_indices
from segloss_jax._src.registry import loss_info


def outputs(seed, shapes, c=3, batch=2):
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.normal(scale=2.0, size=(batch, *s, c)), jnp.float32) for s in shapes]


def int_labels(seed, spatial, c=3, batch=2):
    return np.random.default_rng(seed).integers(0, c, size=(batch, *spatial))


def ce_value(x, labels, valid):
    """Mean CE over valid pixels, float64, from the formula."""
    x = np.asarray(x, np.float64)
    loss = ref.ce(ref.softmax(x), ref.one_hot(labels, x.shape[-1]))
    return ref.pixel_mean(loss, valid)


def test_nearest_exact_indices_match_the_reference():
    for n_in in range(1, 70):
        for n_out in range(1, n_in + 1):
            np.testing.assert_array_equal(nearest_exact_indices(n_in, n_out),
                                          ref.nearest_exact(np.arange(n_in)[None], (n_out,))[0])
    # The exact formula and the float32 arithmetic agree except where the product is whole.
    np.testing.assert_array_equal(nearest_exact_indices(7, 3), [1, 3, 5])
    np.testing.assert_array_equal(nearest_exact_indices(10, 4), [1, 3, 6, 8])
    assert nearest_exact_indices(26, 11)[5] == 12  # 5.5 · 26 / 11 = 13 exactly


@pytest.mark.parametrize("weights,w", [("exp", [1.0, 0.5, 0.25]), ("same", [1.0, 1.0, 1.0]),
                                       ([0.2, 0.0, 3.0], [0.2, 0.0, 3.0]),
                                       ((1, 2, 3), [1.0, 2.0, 3.0]),
                                       (np.array([0.5, 0.25, 0.25]), [0.5, 0.25, 0.25])])
def test_value_matches_numpy_resampling(weights, w):
    shapes = [(7, 10), (3, 4), (2, 3)]  # ratios 7/3, 10/4, 7/2, 10/3: non-integer
    xs = outputs(0, shapes)
    labels = int_labels(0, shapes[0])
    labels[0, 1, :4] = 255
    fn = sl.deep_supervision(sl.cross_entropy, weights=weights)
    got = jax.jit(functools.partial(fn, ignore_index=255))(xs, jnp.asarray(labels))
    terms = []
    for x, shape in zip(xs, shapes, strict=True):
        y = ref.nearest_exact(labels, shape)
        terms.append(ce_value(x, y, y != 255))
    np.testing.assert_allclose(got, np.dot(w, terms) / np.sum(w), rtol=1e-5)


def test_dense_labels_and_where_are_resampled_alike():
    shapes = [(7, 5), (3, 2)]
    xs = outputs(1, shapes)
    labels = int_labels(1, shapes[0])
    dense = ref.softmax(np.random.default_rng(1).normal(size=(*labels.shape, 3)))
    where = np.random.default_rng(2).random(labels.shape) > 0.3
    fn = jax.jit(sl.deep_supervision(sl.cross_entropy, weights="same"))
    got = fn(xs, jnp.asarray(dense, jnp.float32), where=jnp.asarray(where))
    terms = []
    for x, shape in zip(xs, shapes, strict=True):
        g, valid = ref.nearest_exact(dense, shape), ref.nearest_exact(where, shape)
        p = ref.softmax(np.asarray(x, np.float64))
        terms.append(ref.pixel_mean(ref.ce(p, g), valid))
    np.testing.assert_allclose(got, np.mean(terms), rtol=1e-5)
    # A broadcastable `where` (one row mask for every image) keeps its size-1 axis.
    row = where[:1, :, :1]
    got = fn(xs, jnp.asarray(labels), where=jnp.asarray(row))
    terms = [ce_value(x, ref.nearest_exact(labels, s),
                      np.broadcast_to(ref.nearest_exact(row, (s[0], 1)), (2, *s)))
             for x, s in zip(xs, shapes, strict=True)]
    np.testing.assert_allclose(got, np.mean(terms), rtol=1e-5)


def test_three_dimensional_outputs_and_gradient():
    shapes = [(5, 6, 4), (2, 3, 2)]
    xs = outputs(3, shapes, c=2, batch=1)
    labels = int_labels(3, shapes[0], c=2, batch=1)
    fn = sl.deep_supervision(sl.dice_loss)
    value, grads = jax.jit(jax.value_and_grad(fn))(xs, jnp.asarray(labels))
    manual = (sl.dice_loss(xs[0], jnp.asarray(labels)) + 0.5 * sl.dice_loss(
        xs[1], jnp.asarray(ref.nearest_exact(labels, shapes[1])))) / 1.5
    np.testing.assert_allclose(value, manual, rtol=1e-6)
    assert [g.shape for g in grads] == [x.shape for x in xs]
    assert all(np.any(np.asarray(g) != 0) for g in grads)


def _case(name):
    """Two outputs (12×10 and the contract's 6×5) for a registered loss, with the keywords
    the contract tests use."""
    act = loss_info(name).activations[0]
    c = 1 if act in ("sigmoid", None) else 3
    xs = outputs(4, [(12, 10), (6, 5)], c=c)
    if act is None:
        xs = [jax.nn.sigmoid(x) for x in xs]
    labels = int_labels(4, (12, 10), c=max(c, 2))
    kwargs = dict(CONTRACT_KWARGS.get(name, {}))
    for key, param in __import__("inspect").signature(loss_info(name).fn).parameters.items():
        if param.kind is param.KEYWORD_ONLY and param.default is param.empty:
            value = REQUIRED_VALUES[key]
            kwargs.setdefault(key, value(c) if callable(value) else value)
    return xs, jnp.asarray(labels), kwargs


@pytest.mark.parametrize("name", sl.list_losses())
def test_every_registered_loss(name):
    fn = sl.get_loss(name)
    xs, labels, kwargs = _case(name)
    small = jnp.asarray(ref.nearest_exact(np.asarray(labels), (6, 5)))

    @jax.jit  # one compilation for both sides: faster than running them op by op
    def both(xs, labels, small):
        manual = (fn(xs[0], labels, **kwargs) + 0.5 * fn(xs[1], small, **kwargs)) / 1.5
        return sl.deep_supervision(fn)(xs, labels, **kwargs), manual

    got, manual = both(xs, labels, small)
    np.testing.assert_allclose(got, manual, rtol=1e-5, atol=1e-6)


def test_combine_and_jit():
    xs = outputs(5, [(8, 8), (4, 4), (3, 3)])
    labels = jnp.asarray(int_labels(5, (8, 8)))
    combined = sl.combine({"dice": 1.0, "topk_cross_entropy": 0.5}, ignore_index=255)
    fn = sl.deep_supervision(combined, weights=[0.5, 0.3, 0.2])
    small = [jnp.asarray(ref.nearest_exact(np.asarray(labels), x.shape[1:-1])) for x in xs]

    @jax.jit
    def both(xs, labels, small):
        manual = sum(w * combined(x, y) for w, x, y in zip([0.5, 0.3, 0.2], xs, small,
                                                            strict=True))
        return fn(xs, labels), manual

    got, manual = both(xs, labels, small)
    np.testing.assert_allclose(got, manual, rtol=1e-5)


def test_errors_name_the_argument():
    xs = outputs(6, [(8, 6), (4, 3)])
    labels = jnp.asarray(int_labels(6, (8, 6)))
    fn = sl.deep_supervision(sl.cross_entropy)
    with pytest.raises(ValueError, match="`logits_seq` must be a non-empty"):
        fn([], labels)
    with pytest.raises(TypeError, match="`logits_seq` must be a list or tuple"):
        fn(xs[0], labels)
    with pytest.raises(ValueError, match=r"`logits_seq\[1\]` has shape \(1, 4, 3, 3\)"):
        fn([xs[0], xs[1][:1]], labels)
    with pytest.raises(ValueError, match=r"`logits_seq\[1\]` has shape \(2, 4, 3, 2\)"):
        fn([xs[0], xs[1][..., :2]], labels)
    with pytest.raises(ValueError, match=r"`logits_seq\[1\]` has spatial shape \(9, 3\)"):
        fn([xs[0], jnp.zeros((2, 9, 3, 3))], labels)
    with pytest.raises(ValueError, match=r"`labels` has shape \(1, 8, 6\)"):
        fn(xs, labels[:1])
    with pytest.raises(ValueError, match="`weights` has 3 entries but `logits_seq` has 2"):
        sl.deep_supervision(sl.cross_entropy, weights=[1.0, 0.5, 0.2])(xs, labels)
    with pytest.raises(ValueError, match="`weights` must be one of"):
        sl.deep_supervision(sl.cross_entropy, weights="linear")
    with pytest.raises(ValueError, match="`weights` must be non-negative"):
        sl.deep_supervision(sl.cross_entropy, weights=[1.0, -0.5])
    with pytest.raises(ValueError, match="`weights` must be 'exp', 'same' or a non-empty"):
        sl.deep_supervision(sl.cross_entropy, weights=[])
    with pytest.raises(TypeError, match="`loss` must be a callable"):
        sl.deep_supervision("dice")
    with pytest.raises(ValueError, match="keyword `weight_map` has shape"):
        sl.deep_supervision(lambda x, y, weight_map: 0.0)(xs, labels,
                                                          weight_map=jnp.ones((2, 8, 6)))
    with pytest.raises(ValueError, match="`loss` returned shape"):
        fn(xs, labels, reduction="none")


@given(seed=st.integers(0, 2**16), scale=st.floats(0.1, 10.0))
def test_property_weights_are_normalised(seed, scale):
    """Scaling every weight changes nothing; outputs at full resolution all equal the loss."""
    xs = outputs(seed, [(6, 5), (3, 3)])
    labels = jnp.asarray(int_labels(seed, (6, 5)))
    w = np.array([0.7, 0.3])
    a = sl.deep_supervision(sl.cross_entropy, weights=w)(xs, labels)
    b = sl.deep_supervision(sl.cross_entropy, weights=scale * w)(xs, labels)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    same = sl.deep_supervision(sl.cross_entropy, weights="exp")([xs[0]] * 3, labels)
    np.testing.assert_allclose(same, sl.cross_entropy(xs[0], labels), rtol=1e-5)
