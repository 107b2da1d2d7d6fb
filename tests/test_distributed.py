"""Every multi-device test, on the 8 simulated CPU devices set up by conftest.py.

Statistics: unit sums ``psum``-ed over ``axis_name`` equal the global-batch sums,
and the per-image mean of ``reduce_units`` is global.

Every registered loss, with ignored pixels spread unevenly over the shards: (a)
``jit`` over batch-sharded inputs and (b) ``shard_map`` with ``axis_name`` and
``out_specs=P()`` give the single-device value and gradient.

Region losses in more detail: (a) ``jit`` on a batch sharded with a ``NamedSharding`` gives the
single-device loss and gradient. (b) Under ``jax.shard_map`` with ``axis_name``
the statistics are global: every device gets the loss of the concatenated batch,
and the gradient of that loss with respect to each device's shard is the
matching slice of the single-device gradient, whether taken inside
``shard_map`` or through it.

Boundary losses: ``axis_name`` under ``vmap`` gives the global-batch statistic; under
``shard_map`` without ``axis_name`` each device gets the loss of its own shard. The
streaming confusion matrix with ``axis_name`` under ``shard_map`` counts the whole batch.

The distance transforms (``distance_transform_edt``, ``signed_distance``) and the
surface-distance metrics, vmapped inside ``shard_map`` (and the transforms inside
``pmap``), equal the single-device result and the float64 references.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference as ref
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from test_boundary import SHAPE_2D, B
from test_boundary import _inputs as boundary_inputs
from test_contract import DEFAULT_CASES, _call, _num_classes
from test_engine import random_probs, soft_counts
from test_metrics import blob, random_labels

import segloss_jax as sl
from segloss_jax._src import reduce

NAMES = ("dice_loss", "jaccard_loss", "tversky_loss", "generalized_dice_loss")
DEVICES = 8


# --------------------------------------------------------------------- statistics


def test_unit_sums_psum_over_devices_equals_global():
    devices = np.array(jax.devices()[:4])
    mesh = Mesh(devices, ("data",))
    p, g, valid = random_probs(2, shape=(8, 5, 3))

    def local(p, g, valid):
        return soft_counts(p, g, valid, per_image=False, axis_name="data")

    sharded = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P()))
    got = sharded(jnp.asarray(p, jnp.float32), jnp.asarray(g, jnp.float32), jnp.asarray(valid))
    expected = ref.soft_counts(p, g, valid, per_image=False)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def test_reduce_units_per_image_mean_across_devices():
    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    rng = np.random.default_rng(3)
    loss = rng.random((8, 3))
    keep = rng.random((8, 3)) > 0.4
    keep[0] = False

    def local(l, k):
        return reduce.reduce_units(l, k, reduction="mean", axis_name="data")

    got = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P("data"), out_specs=P()))(
        jnp.asarray(loss, jnp.float32), jnp.asarray(keep))
    expected = reduce.reduce_units(jnp.asarray(loss, jnp.float32), jnp.asarray(keep),
                                   reduction="mean")
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# ------------------------------------------------------------------------- losses


@pytest.fixture(scope="module")
def mesh():
    if jax.device_count() < DEVICES:
        pytest.skip(f"needs {DEVICES} devices, found {jax.device_count()}")
    return Mesh(np.array(jax.devices()[:DEVICES]), ("data",))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(DEVICES, 6, 5, 3)) * 2, jnp.float32)
    labels = rng.integers(0, 3, size=(DEVICES, 6, 5))
    labels[:, 0, 0] = 255  # some ignored pixels
    labels[3] = 0  # an image with background only
    return logits, jnp.asarray(labels)


def assert_close(got, want):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=2e-5,
                               atol=1e-6 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("name", NAMES)
def test_named_sharding_jit_equals_single_device(name, mesh, batch):
    logits, labels = batch
    fn = getattr(sl, name)
    loss_fn = jax.jit(jax.value_and_grad(lambda x, y: fn(x, y, ignore_index=255)))
    want_loss, want_grad = loss_fn(logits, labels)
    sharding = NamedSharding(mesh, P("data"))
    got_loss, got_grad = loss_fn(jax.device_put(logits, sharding),
                                 jax.device_put(labels, sharding))
    assert_close(got_loss, want_loss)
    assert_close(got_grad, want_grad)
    assert got_grad.sharding.spec[0] == "data"


def assert_shard_map_matches_single_device(fn, kwargs, mesh, logits, labels):
    """Under shard_map with axis_name every device gets the single-device loss of the
    whole batch, and the gradient of that loss w.r.t. its shard is the matching slice
    of the single-device gradient: taken inside shard_map, or through it with a
    replicated output."""
    # The reference jitted too: one program, not one per operation.
    want_loss, want_grad = jax.jit(jax.value_and_grad(lambda x: fn(x, labels, **kwargs)))(logits)

    def per_device(x, y):
        loss, grad = jax.value_and_grad(lambda x: fn(x, y, axis_name="data", **kwargs))(x)
        return loss[None], grad

    losses, grads = jax.jit(jax.shard_map(
        per_device, mesh=mesh, in_specs=(P("data"), P("data")),
        out_specs=(P("data"), P("data"))))(logits, labels)
    assert losses.shape == (DEVICES,)
    for device_loss in losses:
        assert_close(device_loss, want_loss)
    assert_close(grads, want_grad)

    def global_loss(x):
        return jax.shard_map(lambda x, y: fn(x, y, axis_name="data", **kwargs), mesh=mesh,
                             in_specs=(P("data"), P("data")), out_specs=P())(x, labels)

    loss, grad = jax.jit(jax.value_and_grad(global_loss))(logits)
    assert_close(loss, want_loss)
    assert_close(grad, want_grad)


@pytest.mark.parametrize("name", NAMES)
def test_shard_map_axis_name_gives_global_loss_and_gradient(name, mesh, batch):
    logits, labels = batch
    assert_shard_map_matches_single_device(getattr(sl, name), {"ignore_index": 255}, mesh,
                                           logits, labels)


@pytest.mark.parametrize("name", ("dice_loss", "generalized_dice_loss"))
def test_shard_map_per_image_mean_is_global(name, mesh, batch):
    """With per_image=True, axis_name makes the mean over images global."""
    kwargs = {"ignore_index": 255, "per_image": True, "classes": "present",
              "include_background": False}
    assert_shard_map_matches_single_device(getattr(sl, name), kwargs, mesh, *batch)


def test_shard_map_without_axis_name_is_local(mesh, batch):
    """Without axis_name each device scores its own shard (a documented difference)."""
    logits, labels = batch
    losses = jax.jit(jax.shard_map(
        lambda x, y: sl.dice_loss(x, y, ignore_index=255)[None], mesh=mesh,
        in_specs=(P("data"), P("data")), out_specs=P("data")))(logits, labels)
    for i in range(DEVICES):
        assert_close(losses[i], sl.dice_loss(logits[i:i + 1], labels[i:i + 1],
                                             ignore_index=255))


LOVASZ_CASES = [("lovasz_softmax_loss", False), ("lovasz_softmax_loss", True),
                ("lovasz_hinge_loss", False), ("lovasz_hinge_loss", True)]


@pytest.mark.parametrize("name,per_image", LOVASZ_CASES)
def test_lovasz_axis_name_gives_single_device_loss_and_gradient(name, per_image, mesh, batch):
    """Batch units are gathered across devices (one sort of the whole unit);
    per-image units stay local and their mean is global."""
    logits, labels = batch
    if name == "lovasz_hinge_loss":  # binary: one channel, 0/1 labels
        logits, labels = logits[..., :1], jnp.where(labels == 255, 255, labels % 2)
    assert_shard_map_matches_single_device(
        getattr(sl, name), {"ignore_index": 255, "per_image": per_image}, mesh, logits, labels)


# ------------------------------------------------- every registered loss (the registry)


def _uneven_batch(act, batch=16, spatial=(6, 5)):
    """Logits and labels in which the shards hold different numbers of valid pixels."""
    rng = np.random.default_rng(11)
    c = _num_classes(act)
    logits = rng.normal(scale=2.0, size=(batch, *spatial, c))
    labels = rng.integers(0, max(c, 2), size=(batch, *spatial))
    labels.reshape(batch, -1)[:, : max(c, 2)] = np.arange(max(c, 2))
    ignored = rng.random((batch, *spatial)) < np.linspace(0.7, 0.0, batch)[:, None, None]
    ignored[:, 0, : max(c, 2)] = False
    labels = np.where(ignored, 255, labels)
    if act is None:
        logits = np.asarray(jax.nn.sigmoid(logits))
    return jnp.asarray(logits, jnp.float32), jnp.asarray(labels, jnp.int32)


def _mesh():
    return Mesh(np.array(jax.devices()[:8]), ("d",))


# Once per loss, with its default activation: the statistics are sharded and summed after
# the activation, the same way for every activation (which the contract suite checks).
@pytest.mark.parametrize("name,act", DEFAULT_CASES)
def test_registry_sharded_equals_one_device(name, act):
    """(a) ``jit`` over batch-sharded inputs and (b) ``shard_map`` with ``axis_name`` and
    ``out_specs=P()`` give the single-device value and gradient."""
    logits, labels = _uneven_batch(act)
    fn = jax.jit(jax.value_and_grad(lambda l, y: _call(name, act, l, y, ignore_index=255)))
    value, grad = fn(logits, labels)
    sharding = NamedSharding(_mesh(), P("d"))
    s_value, s_grad = fn(jax.device_put(logits, sharding), jax.device_put(labels, sharding))
    np.testing.assert_allclose(s_value, value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s_grad, grad, rtol=1e-4, atol=1e-7)
    local = jax.shard_map(
        lambda l, y: _call(name, act, l, y, ignore_index=255, axis_name="d"),
        mesh=_mesh(), in_specs=(P("d"), P("d")), out_specs=P())
    m_value, m_grad = jax.jit(jax.value_and_grad(local))(logits, labels)
    np.testing.assert_allclose(m_value, value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m_grad, grad, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------ boundary losses


def test_axis_name_gives_the_global_batch_statistic():
    logits, labels = boundary_inputs(SHAPE_2D, 3, seed=12, dtype=np.float32)
    cases = [(sl.hausdorff_dt_loss, False), (sl.hausdorff_dt_loss, True)]
    for loss, per_image in cases:
        full = loss(logits, labels, per_image=per_image)

        def one(x, y, loss=loss, per_image=per_image):
            return loss(x[None], y[None], per_image=per_image, axis_name="i")

        mapped = jax.jit(jax.vmap(one, axis_name="i"))(logits, labels)
        np.testing.assert_allclose(mapped, np.full(B, full), rtol=1e-5)


BOUNDARY_LOSSES = ("boundary_loss", "hausdorff_dt_loss", "shape_aware_loss",
                   "distance_weighted_cross_entropy")


@pytest.mark.parametrize("sampling", [None, (0.5, 2.0)], ids=["unit", "anisotropic"])
@pytest.mark.parametrize("name", BOUNDARY_LOSSES)
def test_boundary_losses_under_shard_map_without_axis_name_are_local(name, sampling):
    """Without axis_name each device gets the loss of its own shard of two images."""
    rng = np.random.default_rng(22)
    logits = jnp.asarray(rng.normal(scale=2.0, size=(16, 6, 5, 3)), jnp.float32)
    labels = rng.integers(0, 3, size=(16, 6, 5))
    labels[:, 0, 0] = 255  # some ignored pixels
    labels[4:6] = 0  # a shard with background only
    labels = jnp.asarray(labels, jnp.int32)
    fn = functools.partial(getattr(sl, name), ignore_index=255, sampling=sampling)
    losses = jax.jit(jax.shard_map(lambda x, y: fn(x, y)[None], mesh=_mesh(),
                                   in_specs=(P("d"), P("d")), out_specs=P("d")))(logits, labels)
    assert losses.shape == (8,)
    for i in range(8):
        assert_close(losses[i], fn(logits[2 * i:2 * i + 2], labels[2 * i:2 * i + 2]))


# ------------------------------------------------------------------------- metrics


def test_streaming_axis_name_under_shard_map():
    devices = np.array(jax.devices()[:4])
    if len(devices) < 4:
        pytest.skip("needs 4 devices")
    mesh = Mesh(devices, ("data",))
    rng = np.random.default_rng(6)
    pred = jnp.asarray(rng.integers(0, 3, (8, 5)))
    labels = jnp.asarray(random_labels(rng, (8, 5), 3, ignore=255))

    @functools.partial(jax.shard_map, mesh=mesh, in_specs=(P(), P("data"), P("data")),
                       out_specs=P())
    def update(state, p, y):
        return state.update(p, y, ignore_index=255, axis_name="data")

    state = update(sl.ConfusionMatrixMetric.init(3), pred, labels)
    np.testing.assert_array_equal(state.counts(), ref.confusion_matrix(pred, labels, 3, None, 255))


@pytest.mark.parametrize("norm", ["l1", "max"])
def test_calibration_error_axis_name_under_shard_map(norm):
    rng = np.random.default_rng(7)
    probs = jnp.asarray(random_probs(7, (8, 5, 6), 3)[0], jnp.float32)
    labels = jnp.asarray(random_labels(rng, (8, 5, 6), 3, ignore=255))
    fn = functools.partial(sl.calibration_error, num_bins=10, norm=norm, ignore_index=255)
    mapped = jax.jit(jax.shard_map(lambda p, y: fn(p, y, axis_name="d"), mesh=_mesh(),
                                   in_specs=(P("d"), P("d")), out_specs=P()))(probs, labels)
    np.testing.assert_allclose(mapped, fn(probs, labels), rtol=1e-6)
    np.testing.assert_allclose(mapped, ref.calibration_error(probs, labels, 10, norm,
                                                             np.asarray(labels) != 255),
                               rtol=1e-5)
    # The streaming state: every device holds the global batch's bins.
    state = jax.jit(jax.shard_map(
        lambda st, p, y: st.update(p, y, ignore_index=255, axis_name="d"), mesh=_mesh(),
        in_specs=(P(), P("d"), P("d")), out_specs=P()))(sl.CalibrationErrorMetric.init(10),
                                                        probs, labels)
    np.testing.assert_allclose(state.compute()["ece" if norm == "l1" else "mce"], mapped,
                               rtol=1e-6)


# ------------------------------------------- distance transforms and surface distances

EDT_SHAPES = [(10, 10), (6, 6, 6)]
EDT_IDS = ["2d", "3d"]
TRANSFORMS = {"distance_transform_edt": ref.edt, "signed_distance": ref.one_hot2dist}


def edt_masks(spatial, batch=16, seed=21):
    """Masks of densities 0.2 to 0.95, each with a zero (scipy's transform needs one);
    the first all background."""
    rng = np.random.default_rng(seed + len(spatial))
    density = np.linspace(0.2, 0.95, batch).reshape((batch,) + (1,) * len(spatial))
    masks = rng.random((batch, *spatial)) < density
    flat = masks.reshape(batch, -1)
    flat[np.arange(batch), rng.integers(flat.shape[1], size=batch)] = False
    masks[0] = False
    return masks


def scipy_transform(name, masks, sampling):
    """The float64 reference of ``name`` for every mask of the batch."""
    return np.stack([TRANSFORMS[name](m, sampling) for m in masks])


def sharded(fn, n_args=1):
    """``fn`` under jit of shard_map over the 8 devices, every argument and the output
    split along the batch."""
    specs = (P("d"),) * n_args
    return jax.jit(jax.shard_map(fn, mesh=_mesh(), in_specs=specs if n_args > 1 else specs[0],
                                 out_specs=P("d")))


@pytest.mark.parametrize("sampling", [None, "anisotropic"])
@pytest.mark.parametrize("spatial", EDT_SHAPES, ids=EDT_IDS)
@pytest.mark.parametrize("name", TRANSFORMS)
def test_transforms_under_shard_map_equal_one_device_and_scipy(name, spatial, sampling):
    # Spacing with smallest step 1: Kervadec's "- 1" is then the library's.
    sampling = None if sampling is None else (1.0, 2.0, 1.5)[:len(spatial)]
    masks = edt_masks(spatial)
    fn = jax.vmap(functools.partial(getattr(sl, name), sampling=sampling))
    single = fn(jnp.asarray(masks))
    mapped = sharded(fn)(jnp.asarray(masks))
    assert mapped.shape == masks.shape
    np.testing.assert_allclose(mapped, single, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mapped, scipy_transform(name, masks, sampling), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("name", TRANSFORMS)
def test_transforms_under_shard_map_with_traced_sampling(name):
    """A replicated traced spacing beside the sharded masks."""
    masks = edt_masks((10, 10))
    sampling = jnp.array([1.0, 2.5])

    def fn(m, s):
        return jax.vmap(lambda x: getattr(sl, name)(x, sampling=s))(m)

    mapped = jax.jit(jax.shard_map(fn, mesh=_mesh(), in_specs=(P("d"), P()),
                                   out_specs=P("d")))(jnp.asarray(masks), sampling)
    np.testing.assert_allclose(mapped, fn(jnp.asarray(masks), sampling), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mapped, scipy_transform(name, masks, (1.0, 2.5)), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("spatial", EDT_SHAPES, ids=EDT_IDS)
@pytest.mark.parametrize("name", TRANSFORMS)
def test_transforms_under_pmap_equal_one_device_and_scipy(name, spatial):
    masks = edt_masks(spatial, seed=23)
    fn = jax.vmap(getattr(sl, name))
    per_device = jnp.asarray(masks.reshape(8, 2, *spatial))  # a leading device axis of 8
    mapped = jax.pmap(fn, devices=jax.devices()[:8])(per_device)
    assert mapped.shape == (8, 2, *spatial)
    mapped = np.asarray(mapped).reshape(masks.shape)
    np.testing.assert_allclose(mapped, fn(jnp.asarray(masks)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mapped, scipy_transform(name, masks, None), rtol=1e-5, atol=1e-5)


METRIC_CASES = [
    pytest.param("hausdorff_distance", {}, id="hd"),
    pytest.param("hausdorff_distance", {"percentile": 95.0}, id="hd95"),
    pytest.param("average_surface_distance", {}, id="asd"),
    pytest.param("average_surface_distance", {"symmetric": False}, id="asd-directed"),
    pytest.param("surface_dice", {"tolerance": 1.5}, id="surface-dice"),
]


def surface_reference(name, a, b, kwargs):
    if name == "hausdorff_distance":
        return ref.hausdorff_distance(a, b, kwargs.get("percentile", 100.0))
    if name == "surface_dice":
        return ref.surface_dice(a, b, kwargs["tolerance"])
    return ref.average_surface_distance(a, b, kwargs.get("symmetric", True))


@pytest.mark.parametrize("spatial", EDT_SHAPES, ids=EDT_IDS)
@pytest.mark.parametrize("name,kwargs", METRIC_CASES)
def test_surface_distances_under_shard_map_equal_one_device(name, kwargs, spatial):
    rng = np.random.default_rng(24)
    a = np.stack([blob(rng, spatial, p=0.3) for _ in range(16)])
    b = np.stack([blob(rng, spatial, p=0.4) for _ in range(16)])
    b[3] = False  # one empty mask: inf (surface Dice: 0)
    a[5] = b[5] = False  # both empty: NaN
    fn = jax.vmap(functools.partial(getattr(sl, name), **kwargs))
    single = fn(jnp.asarray(a), jnp.asarray(b))
    mapped = sharded(fn, n_args=2)(jnp.asarray(a), jnp.asarray(b))
    assert mapped.shape == (16,)
    np.testing.assert_allclose(mapped, single, rtol=1e-6)
    expected = [surface_reference(name, x, y, kwargs) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(mapped, expected, rtol=1e-5)


def test_combine_passes_axis_name_to_every_term():
    logits, labels = _uneven_batch("softmax")
    loss_fn = sl.combine({"dice": 1.0, "cross_entropy": 0.5, "lovasz_softmax": 0.25},
                         ignore_index=255)
    value, grad = jax.jit(jax.value_and_grad(lambda l: loss_fn(l, labels)))(logits)
    local = jax.shard_map(lambda l, y: loss_fn(l, y, axis_name="d"), mesh=_mesh(),
                          in_specs=(P("d"), P("d")), out_specs=P())
    m_value, m_grad = jax.jit(jax.value_and_grad(local))(logits, labels)
    np.testing.assert_allclose(m_value, value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m_grad, grad, rtol=1e-4, atol=1e-7)
