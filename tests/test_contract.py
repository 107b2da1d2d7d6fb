"""The contract every registered loss honours, checked generically.

Parametrised over ``sl.list_losses()`` and each loss's registered activations
(``"softmax"`` with C = 3, ``"sigmoid"`` with C = 1), so a loss added later is
checked without new code here. Keywords are passed only when the loss's
signature has them.

Compiling dominates the time of this suite, so each case compiles few programs and
every check runs on them: one jitted value-and-gradient with the loss's defaults
(:func:`_compiled`, compiled once per input shape and dtype) serves the gradient,
extreme-logit, low-precision and retrace checks, one with ``ignore_index`` and a ``where``
argument serves the masking and jit-equals-eager checks, and the float64 Hessian-vector
product serves the float64 check. The tests of a loss
form one ``xdist_group``: tests/conftest.py runs them one after the other, so that one
pytest-xdist worker compiles them (``--dist loadgroup`` keeps each group on one worker
where pytest-xdist sees the groups).
"""

from __future__ import annotations

import collections
import functools
import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import core as jax_core
from jax._src.interpreters import partial_eval as pe
from jax.experimental import checkify
from xla_options import DEFAULT_EMITTERS

import segloss_jax as sl
from segloss_jax._src.registry import loss_info

SPATIAL = (6, 5)
BATCH = 2


def _cases():
    for name in sl.list_losses():
        acts = [a for a in loss_info(name).activations if a in ("softmax", "sigmoid")]
        for act in acts or [None]:
            yield pytest.param(name, act, id=f"{name}-{act}",
                               marks=pytest.mark.xdist_group(name))


CASES = list(_cases())


def _default_activation(name):
    return next((a for a in loss_info(name).activations if a in ("softmax", "sigmoid")), None)


# The composition checks (jit = eager, vmap = loop) once per loss, with its default
# activation: the activation changes which array functions run, not how the loss composes
# with jit and vmap, and each activation is some loss's default. Every other check runs
# for every activation.
DEFAULT_CASES = [c for c in CASES if c.values[1] == _default_activation(c.values[0])]


def _params(name):
    return inspect.signature(sl.get_loss(name)).parameters


def _num_classes(act):
    return 3 if act == "softmax" else 1


def _inputs(act, seed=0, batch=BATCH, spatial=SPATIAL, dtype=jnp.float32):
    """Random logits and integer labels in which every class occurs."""
    rng = np.random.default_rng(seed)
    c = _num_classes(act)
    logits = rng.normal(scale=2.0, size=(batch, *spatial, c))
    labels = rng.integers(0, max(c, 2), size=(batch, *spatial))
    labels.reshape(batch, -1)[:, : max(c, 2)] = np.arange(max(c, 2))
    if act is None:  # probabilities
        logits = np.asarray(jax.nn.sigmoid(logits))
    return jnp.asarray(logits, dtype), jnp.asarray(labels, jnp.int32)


# Values for hyperparameters that have no default (e.g. `weighted_cross_entropy(beta=...)`);
# a callable gets the class count.
REQUIRED_VALUES = {"beta": 2.0}
# Distances between C classes on a line, |i - j|: a valid [C, C] matrix (zero diagonal).
REQUIRED_VALUES["distance_matrix"] = lambda c: np.abs(np.subtract.outer(np.arange(c), np.arange(c)))
# Per-loss keywords the small contract inputs need (e.g. a window smaller than the image).
CONTRACT_KWARGS: dict[str, dict] = {"ssim": {"window_size": 3},
                                    # RMI's 3 × 3 windows need a map of 3 × 3: no pooling.
                                    "rmi": {"pool": None},
                                    # Instance ids are found in the graph: a static bound.
                                    "blob": {"max_instances": 2}}


def _call(name, act, logits, labels, **kwargs):
    params = _params(name)
    if "activation" in params:
        kwargs["activation"] = act
    for key, param in params.items():
        if param.kind is param.KEYWORD_ONLY and param.default is param.empty:
            value = REQUIRED_VALUES[key]
            kwargs.setdefault(key, value(logits.shape[-1]) if callable(value) else value)
    for key, value in CONTRACT_KWARGS.get(name, {}).items():
        kwargs.setdefault(key, value)
    return sl.get_loss(name)(logits, labels, **kwargs)


# Traces of the programs of :func:`_compiled`, by case, options and input signature.
TRACES: collections.Counter = collections.Counter()


def _signature(*arrays):
    return tuple((a.shape, str(a.dtype)) for a in arrays)


@functools.cache
def _compiled(name, act, masked=False):
    """The jitted value and gradient of a case, shared by the tests below: calls with the
    same input shapes and dtypes reuse its compiled program.

    ``masked=False``: the loss with its defaults, ``f(logits, labels)``. ``masked=True``:
    with ``ignore_index=255`` and ``where=keep`` where the loss takes them,
    ``f(logits, labels, keep)``.
    """
    params = _params(name)

    def loss(logits, labels, *keep):
        TRACES[name, act, masked, _signature(logits, labels, *keep)] += 1
        kwargs = {}
        if masked and "ignore_index" in params:
            kwargs["ignore_index"] = 255
        if masked and "where" in params:
            kwargs["where"] = keep[0]
        return _call(name, act, logits, labels, **kwargs)

    return jax.jit(jax.value_and_grad(loss))


def _assert_finite(*arrays):
    for a in arrays:
        assert np.all(np.isfinite(np.asarray(a, np.float64))), a


@pytest.mark.parametrize("name,act", DEFAULT_CASES)
def test_jit_equals_eager(name, act):
    """The same call with and without ``jit`` gives the same scalar. Where the loss takes
    ``where``, the call has a mask (and ``ignore_index``, which no label hits): the eager
    programs are then those of :func:`test_where_as_written` and the jitted one is the
    masking checks' program, so no program is compiled for this test alone."""
    logits, labels = _inputs(act)
    if "where" in _params(name):
        keep = ~_excluded()
        expected = _call(name, act, logits, labels, where=keep)
        value, _ = _compiled(name, act, masked=True)(logits, labels, keep)
    else:
        expected = _call(name, act, logits, labels)
        value, _ = _compiled(name, act)(logits, labels)
    assert value.shape == () and expected.shape == ()
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,act", DEFAULT_CASES)
def test_vmap_equals_loop(name, act):
    stacked = [_inputs(act, seed=s) for s in range(3)]
    logits = jnp.stack([s[0] for s in stacked])
    labels = jnp.stack([s[1] for s in stacked])
    mapped = jax.jit(jax.vmap(lambda l, y: _call(name, act, l, y)))(logits, labels)
    looped = jnp.stack([_compiled(name, act)(l, y)[0] for l, y in stacked])
    np.testing.assert_allclose(mapped, looped, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,act", CASES)
def test_gradient_finite_and_nonzero(name, act):
    logits, labels = _inputs(act)
    value, grad = _compiled(name, act)(logits, labels)
    _assert_finite(value, grad)
    assert grad.shape == logits.shape and grad.dtype == logits.dtype
    assert np.any(np.asarray(grad) != 0)


@pytest.mark.parametrize("scale", [1e4, 1e30])
@pytest.mark.parametrize("name,act", [c for c in CASES if c.values[1] is not None])
def test_extreme_logits_finite(name, act, scale):
    logits, labels = _inputs(act)
    logits = jnp.sign(logits) * scale
    value, grad = _compiled(name, act)(logits, labels)
    _assert_finite(value, grad)


# The first registered loss of each family, with its default activation.
FAMILY_CASES = list({loss_info(c.values[0]).kind: c for c in reversed(DEFAULT_CASES)}.values())


def _low_precision_cases():
    """bfloat16 for every case; float16, which the inputs' one cast to float32 treats as it
    treats bfloat16, once per family."""
    for case in CASES:
        name, act = case.values
        yield pytest.param(name, act, jnp.bfloat16, id=f"{case.id}-bfloat16", marks=case.marks)
        if case in FAMILY_CASES:
            yield pytest.param(name, act, jnp.float16, id=f"{case.id}-float16", marks=case.marks)


@pytest.mark.parametrize("name,act,dtype", list(_low_precision_cases()))
def test_low_precision_inputs(name, act, dtype):
    logits, labels = _inputs(act)
    low = logits.astype(dtype)
    value, grad = _compiled(name, act)(low, labels)
    assert value.dtype == jnp.float32
    assert grad.dtype == dtype
    _assert_finite(value, grad)
    # Computation runs in float32, so the result equals float32 on the rounded inputs.
    reference, _ = _compiled(name, act)(low.astype(jnp.float32), labels)
    np.testing.assert_allclose(value, reference, rtol=2e-3, atol=2e-3)


def _excluded(seed=1):
    rng = np.random.default_rng(seed)
    mask = rng.random((BATCH, *SPATIAL)) < 0.3
    mask[:, 0, 0] = False  # keep the classes planted at the first pixels
    mask[:, 0, 1] = False
    mask[:, 0, 2] = False
    return jnp.asarray(mask)


def _perturbed(act, logits, labels, excluded, seed=2):
    """Logits and labels changed at the excluded pixels only."""
    rng = np.random.default_rng(seed)
    new_logits = jnp.asarray(rng.normal(scale=30.0, size=logits.shape), logits.dtype)
    if act is None:
        new_logits = jax.nn.sigmoid(new_logits)
    new_labels = jnp.asarray(rng.integers(0, max(_num_classes(act), 2), labels.shape), labels.dtype)
    return (
        jnp.where(excluded[..., None], new_logits, logits),
        jnp.where(excluded, new_labels, labels),
    )


@pytest.mark.parametrize("name,act", [c for c in CASES if "where" in _params(c.values[0])])
def test_where_excluded_pixels_do_not_matter(name, act):
    logits, labels = _inputs(act)
    excluded = _excluded()
    other_logits, other_labels = _perturbed(act, logits, labels, excluded)
    f = _compiled(name, act, masked=True)  # ignore_index=255 too: no label is 255 here
    value, grad = f(logits, labels, ~excluded)
    other_value, other_grad = f(other_logits, other_labels, ~excluded)
    np.testing.assert_allclose(other_value, value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(other_grad, grad, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(grad)[np.asarray(excluded)] == 0)
    assert np.all(np.asarray(other_grad)[np.asarray(excluded)] == 0)


@pytest.mark.parametrize("name,act", [c for c in CASES if "ignore_index" in _params(c.values[0])])
def test_ignore_index_excluded_pixels_do_not_matter(name, act):
    logits, labels = _inputs(act)
    excluded = _excluded()
    ignored = jnp.where(excluded, 255, labels)
    other_logits, _ = _perturbed(act, logits, labels, excluded)
    f = _compiled(name, act, masked=True)
    keep_all = jnp.ones(labels.shape, bool)
    value, grad = f(logits, ignored, keep_all)
    other_value, other_grad = f(other_logits, ignored, keep_all)
    np.testing.assert_allclose(other_value, value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(other_grad, grad, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(grad)[np.asarray(excluded)] == 0)
    # ignore_index and the equivalent `where` agree.
    if "where" in _params(name):
        where_value, _ = f(logits, labels, ~excluded)
        np.testing.assert_allclose(value, where_value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,act", CASES)
def test_no_retrace_when_only_values_change(name, act):
    f = _compiled(name, act)
    for seed in range(3):
        logits, labels = _inputs(act, seed=seed)
        f(logits, labels)
    assert TRACES[name, act, False, _signature(logits, labels)] == 1


# ----------------------------------------------------------------------------- bad input


def _raises(name, act, logits, labels, exc, match, **kwargs):
    with pytest.raises(exc, match=match):
        _call(name, act, logits, labels, **kwargs)


@pytest.mark.parametrize("name,act", CASES)
def test_bad_label_rank(name, act):
    logits, labels = _inputs(act)
    _raises(name, act, logits, labels[0], ValueError, "labels")


@pytest.mark.parametrize("name,act", CASES)
def test_bad_spatial_shape(name, act):
    logits, labels = _inputs(act)
    _raises(name, act, logits, labels[:, :-1], ValueError, "labels")


@pytest.mark.parametrize("name,act", CASES)
def test_bad_dense_class_count(name, act):
    logits, _ = _inputs(act)
    dense = jnp.zeros((*logits.shape[:-1], logits.shape[-1] + 1), jnp.float32)
    _raises(name, act, logits, dense, ValueError, "classes")


@pytest.mark.parametrize("name,act", CASES)
def test_integer_logits(name, act):
    logits, labels = _inputs(act)
    _raises(name, act, logits.astype(jnp.int32), labels, TypeError, "logits")


@pytest.mark.parametrize("name", [
    pytest.param(c.values[0], marks=c.marks) for c in CASES if c.values[1] == "softmax"])
def test_softmax_with_one_class(name):
    logits, labels = _inputs("sigmoid")
    _raises(name, "softmax", logits, labels, ValueError, "softmax")


@pytest.mark.parametrize("name,act", [c for c in CASES if "activation" in _params(c.values[0])])
def test_unknown_activation(name, act):
    logits, labels = _inputs(act)
    _raises(name, "softplus", logits, labels, ValueError, "activation")


@pytest.mark.parametrize("name,act", [c for c in CASES if "reduction" in _params(c.values[0])])
def test_unknown_reduction(name, act):
    logits, labels = _inputs(act)
    _raises(name, act, logits, labels, ValueError, "reduction", reduction="avg")


@pytest.mark.parametrize("name,act", [c for c in CASES if "class_weights" in _params(c.values[0])])
def test_class_weights_wrong_length(name, act):
    logits, labels = _inputs(act)
    weights = jnp.ones(logits.shape[-1] + 1)
    _raises(name, act, logits, labels, ValueError, "class_weights", class_weights=weights)


@pytest.mark.parametrize("name,act", [c for c in CASES if "gamma" in _params(c.values[0])])
def test_negative_gamma(name, act):
    logits, labels = _inputs(act)
    _raises(name, act, logits, labels, ValueError, "gamma", gamma=-1.0)


# Once per loss: every loss checks its labels in one place (`inputs.check_label_values`,
# whose bounds for one and for several classes tests/test_inputs.py checks), before the
# activation.
@pytest.mark.parametrize("name,act", DEFAULT_CASES)
def test_out_of_range_labels_reported_under_checkify(name, act):
    if loss_info(name).labels == ("instances",):
        pytest.skip(f"{name} takes instance ids: any id >= 0 is in range")
    logits, labels = _inputs(act)
    bad = labels.at[0, 0, 0].set(7)
    checked = checkify.checkify(jax.jit(lambda l, y: _call(name, act, l, y)))
    err, _ = checked(logits, bad)
    with pytest.raises(checkify.JaxRuntimeError, match="labels"):
        err.throw()
    err, _ = checked(logits, labels)
    err.throw()  # in-range labels pass


# ------------------------------------------------------------------ inputs as users write them


def _weight_forms(c):
    """Per-class weights written five ways; all mean ``[1, 2, 3][:c]``."""
    ints = [1, 2, 3][:c]
    return {"list": ints, "tuple": tuple(float(w) for w in ints),
            "numpy_int": np.asarray(ints, np.int64), "numpy_float": np.asarray(ints, np.float32),
            "jax": jnp.asarray(ints, jnp.float32)}


# Once per loss, with its default activation: the weights are read by one function
# (`inputs.class_vector`) whatever the activation.
@pytest.mark.parametrize("name,act",
                         [c for c in DEFAULT_CASES if "class_weights" in _params(c.values[0])])
def test_class_weights_as_written(name, act):
    logits, labels = _inputs(act)
    forms = _weight_forms(_num_classes(act))
    values = {k: _call(name, act, logits, labels, class_weights=w) for k, w in forms.items()}
    for form, value in values.items():
        np.testing.assert_allclose(value, values["jax"], rtol=1e-6, err_msg=form)
    jitted = jax.jit(lambda l, y: _call(name, act, l, y, class_weights=forms["list"]))
    np.testing.assert_allclose(jitted(logits, labels), values["jax"], rtol=1e-5, atol=1e-6)


# Once per loss, with its default activation: every loss reads `where` through one function
# (`inputs.validity_mask`).
@pytest.mark.parametrize("name,act",
                         [c for c in DEFAULT_CASES if "where" in _params(c.values[0])])
def test_where_as_written(name, act):
    logits, labels = _inputs(act)
    keep = ~_excluded()
    expected = _call(name, act, logits, labels, where=keep)
    for form in (keep.astype(jnp.int32), np.asarray(keep, np.uint8), np.asarray(keep) * 7):
        np.testing.assert_allclose(_call(name, act, logits, labels, where=form), expected,
                                   rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match=r"weight map is not a mask.*where=mask > 0\.5"):
        _call(name, act, logits, labels, where=keep.astype(jnp.float32))


# ------------------------------------------------------------------------ one activation pass


def _activation_elements(jaxpr) -> int:
    """Elements produced by ``exp``/``logistic`` equations, sub-jaxprs included."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("exp", "exp2", "logistic"):
            total += sum(math.prod(v.aval.shape) for v in eqn.outvars)
        for sub in jax_core.jaxprs_in_params(eqn.params):
            total += _activation_elements(sub)
    return total


def forward_activation_elements(fn, *args) -> int:
    """Activation elements in the dead-code-free forward graph of ``fn(*args)``."""
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    jaxpr, _ = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
    return _activation_elements(jaxpr)


@pytest.mark.parametrize("name,act", CASES)
@pytest.mark.parametrize("dense", [False, True])
def test_one_activation_pass(name, act, dense):
    if dense and "dense" not in loss_info(name).labels:
        pytest.skip(f"{name} takes integer labels only")
    logits, labels = _inputs(act)
    if dense:
        labels = jax.nn.one_hot(labels, max(_num_classes(act), 2))[..., -_num_classes(act):]
    elements = forward_activation_elements(lambda l: _call(name, act, l, labels), logits)
    assert elements <= logits.size, (name, act, elements, logits.size)
    if act is not None and name != "lovasz_hinge":  # the hinge has no activation
        assert elements > 0  # the count sees the activation


# -------------------------------------------------------------------------------- second order


# Losses built on grey-level erosion and dilation (min/max windows): eroded maps have
# ties between window elements, where the second derivative is one-sided, and
# `jax.hessian` (vmapped forward-over-reverse) may take another side than `jax.jvp`.
# Their HVPs are still checked against finite differences (compiled with the default fusion
# emitters: see tests/xla_options.py).
TIED_WINDOWS = {"cldice", "dice_cldice"}


# Once per loss, with its default activation: the activations' own second derivatives are
# checked in tests/test_inputs.py, and the first-order checks above run for every activation.
@pytest.mark.parametrize("name,act", DEFAULT_CASES)
def test_hessian_vector_products(name, act):
    """Second derivatives work and are right: Hessian-vector products against central
    differences of the gradient. The product comes from ``jax.hessian`` (forward over
    reverse, vmapped: losses with a custom VJP reject plain ``jax.jvp``, and the backward
    pass they define is itself differentiable), in the program that also gives the
    gradient; for the tied-window losses from ``jax.jvp`` of the gradient. The inputs are
    float64, so this is also where float64 in gives float64 out."""
    with jax.enable_x64(True):
        logits, labels = _inputs(act, batch=1, spatial=(3, 4), dtype=jnp.float64)

        def loss(z):
            return _call(name, act, z, labels)

        # Host arrays in and out: no eager operation to compile beside the one program.
        x, v = np.asarray(logits), np.random.default_rng(5).normal(size=logits.shape)
        if name in TIED_WINDOWS:
            with_hvp = jax.jit(lambda x, v: jax.jvp(jax.value_and_grad(loss), (x,), (v,)),
                               compiler_options=DEFAULT_EMITTERS)

            def second_order(x):
                (value, grad), (_, hvp) = with_hvp(x, v)
                return value, grad, hvp
        else:
            with_hessian = jax.jit(lambda x: (jax.value_and_grad(loss)(x), jax.hessian(loss)(x)))

            def second_order(x):
                (value, grad), hessian = with_hessian(x)
                assert hessian.shape == logits.shape * 2 and hessian.dtype == jnp.float64
                return value, grad, np.tensordot(np.asarray(hessian), v, v.ndim)

        value, grad, hvp = second_order(x)
        assert value.dtype == jnp.float64 and grad.dtype == jnp.float64
        assert hvp.dtype == jnp.float64
        _assert_finite(value, grad, hvp)
        eps = 1e-6  # central differences of the gradient (a primal output) along v
        grad_plus, grad_minus = (np.asarray(second_order(x + s * v)[1]) for s in (eps, -eps))
        np.testing.assert_allclose(np.asarray(hvp), (grad_plus - grad_minus) / (2 * eps),
                                   rtol=1e-4, atol=1e-6)
