"""The helpers family: the registry lookups :func:`get_loss` and :func:`list_losses`, and
functions of losses, :func:`combine` (a weighted sum of registered losses) and
:func:`deep_supervision` (one loss over every output of a multi-scale decoder).

For deep supervision the labels (and ``where``) are resampled to each output's
spatial shape by nearest-exact sampling; shapes are static, so the resampling is
a constant gather, chosen at trace time.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from segloss_jax._src import checks
from segloss_jax._src.registry import (
    LossInfo,
    accepted_keywords,
    check_keywords,
    loss_info,
    registered_names,
)

__all__ = ["get_loss", "list_losses", "combine", "deep_supervision"]

def get_loss(name: str) -> Callable[..., Any]:
    """Returns the registered loss function called ``name``.

    Args:
      name: a name from :func:`list_losses`, e.g. ``"dice"`` or ``"lovasz_softmax"``.

    Returns:
      The loss function, called as ``fn(logits, labels, **kwargs)``.

    Raises:
      KeyError: for an unknown name; the message lists close matches.

    Examples:
      >>> import segloss_jax as sl
      >>> sl.get_loss("cross_entropy") is sl.cross_entropy
      True
    """
    return loss_info(name).fn


def list_losses() -> tuple[str, ...]:
    """Names of every registered loss, sorted.

    Examples:
      >>> import segloss_jax as sl
      >>> "focal" in sl.list_losses()
      True
    """
    return registered_names()



_WEIGHTINGS = ("exp", "same")


def nearest_exact_indices(n_in: int, n_out: int) -> np.ndarray:
    """Source index ``min(floor((j + 0.5)·n_in / n_out), n_in - 1)`` of each output
    index ``j``, with PyTorch's ``"nearest-exact"`` arithmetic: the scale
    ``n_in / n_out`` is a float32 and the product is rounded to float32 before the
    floor. Where ``(j + 0.5)·n_in / n_out`` is whole this can read the pixel before
    (26 -> 11 reads 12 at ``j = 5``, not 13), as PyTorch, MONAI and nnU-Net do."""
    scale = np.float32(n_in) / np.float32(n_out)
    source = np.floor(((np.arange(n_out) + 0.5) * np.float64(scale)).astype(np.float32))
    return np.minimum(source.astype(np.int64), n_in - 1)


def resample_nearest(x: jax.Array, spatial: tuple[int, ...]) -> jax.Array:
    """``x`` (``[B, *spatial_in, ...]``) resampled to ``[B, *spatial, ...]``; an axis of
    size 1 (a broadcast axis of ``where``) or of the requested size stays as it is."""
    for axis, n_out in enumerate(spatial, start=1):
        n_in = x.shape[axis]
        if n_in not in (1, n_out):
            x = jnp.take(x, nearest_exact_indices(n_in, n_out), axis=axis)
    return x


def _weights(weights, n: int):
    if isinstance(weights, str):
        return [2.0 ** -i for i in range(n)] if weights == "exp" else [1.0] * n
    if len(weights) != n:
        raise ValueError(f"`weights` has {len(weights)} entries but `logits_seq` has {n} "
                         "outputs: give one weight per output.")
    return weights


def deep_supervision(
    loss: Callable[..., jax.Array], *, weights: str | Sequence[float] | chex.Array = "exp"
) -> Callable[..., jax.Array]:
    r"""Wraps a loss for deep supervision: a weighted mean over the decoder's outputs.

    .. math::

       L = \frac{\sum_i w_i\, \mathcal{L}(x_i, y_i)}{\sum_i w_i}, \qquad
       y_i[j] = y\!\left[\left\lfloor (j + \tfrac12)\, \frac{n_\text{in}}{n_\text{out}}
       \right\rfloor\right] \text{ per spatial axis}

    with :math:`x_i` = ``logits_seq[i]`` (``logits_seq[0]`` at full resolution, the
    others coarser) and :math:`y_i` the labels resampled to its spatial shape by
    nearest-exact sampling (PyTorch's ``interpolate(mode="nearest-exact")``, index for
    index: its float32 scale included, which reads the pixel before the exact
    formula's in the rare cases where :math:`(j + \tfrac12) n_\text{in}/n_\text{out}`
    is whole, e.g. 26 → 11 at :math:`j = 5`): integer
    labels (``ignore_index`` values included) and dense labels alike, and so is a
    ``where`` passed as a keyword (its size-1 broadcast axes stay). Every other
    keyword is passed unchanged to the loss at every output; a per-pixel array other
    than ``where`` (an array keyword with the labels' batch and spatial shape) is a
    ``ValueError``: call the loss per output with a map at each resolution instead.
    ``sampling`` (the boundary losses' voxel spacing) is passed unchanged too.

    Args:
      loss: any loss ``loss(logits, labels, **kw)`` returning a scalar (or the same
        shape at every output): a registered loss, :func:`combine`'s result, or a
        ``functools.partial`` of either.
      weights: ``"exp"`` (:math:`w_i = 2^{-i}`), ``"same"`` (:math:`w_i = 1`), or a
        sequence (list, tuple, array) of non-negative weights, one per output
        (checked when called).

    Returns:
      ``fn(logits_seq, labels, **kw)``: ``logits_seq`` a list or tuple of
      ``[B, *spatial_i, C]`` logits with the batch size and classes of ``labels``
      and no spatial axis larger than the labels'; ``labels`` integer
      ``[B, *spatial]`` or dense ``[B, *spatial, C]`` at full resolution. It is
      jit-able (the resampling is chosen from the static shapes).

    MONAI's ``DeepSupervisionLoss(loss, weight_mode, weights)`` returns
    :math:`\sum_i w_i \mathcal{L}_i` without dividing by :math:`\sum_i w_i`, and its
    ``"exp"`` weights are :math:`\max(2^{-i}, 1/16)`: its value is :math:`\sum_i w_i`
    times this one with ``weights=[max(2.0**-i, 1 / 16) for i in range(n)]`` (its
    targets are resampled with ``interpolate(mode="nearest-exact")`` as here; it
    takes MONAI's channels-first ``[B, 1, *spatial]`` labels). nnU-Net uses
    :math:`2^{-i}` with the lowest resolution's weight set to 0, normalised to sum 1, i.e.
    ``weights=[2.0**-i for i in range(n - 1)] + [0.0]`` here; its data loader
    (batchgeneratorsv2's ``DownsampleSegForDSTransform``) downsamples the targets
    with ``interpolate(mode="nearest-exact")`` too, so the targets agree.

    Raises:
      ValueError: for an unknown ``weights`` string, a negative weight, a number of
        weights that differs from the number of outputs, an empty ``logits_seq``,
        outputs that differ in batch size, class count or spatial rank, or an output
        larger than the labels along a spatial axis.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> labels = jnp.zeros((2, 8, 8), jnp.int32).at[:, 2:6, 2:6].set(1)
      >>> outputs = [jnp.zeros((2, 8, 8, 2)), jnp.zeros((2, 4, 4, 2)), jnp.zeros((2, 2, 2, 2))]
      >>> loss_fn = sl.deep_supervision(sl.dice_ce_loss, weights="exp")
      >>> print(f"{jax.jit(loss_fn)(outputs, labels):.4f}")
      1.2265
    """
    if not callable(loss):
        raise TypeError(f"`loss` must be a callable loss(logits, labels, **kw), got {loss!r}.")
    if isinstance(weights, str):
        checks.check_choice("weights", weights, _WEIGHTINGS)
    else:
        shape = np.shape(weights)
        if len(shape) != 1 or shape[0] == 0:
            raise ValueError(f"`weights` must be 'exp', 'same' or a non-empty sequence of "
                             f"numbers, got shape {shape}.")
        checks.check_nonnegative("weights", weights)

    def supervised(logits_seq: Sequence[chex.Array], labels: chex.Array,
                   **kwargs: Any) -> jax.Array:
        if not isinstance(logits_seq, (list, tuple)):
            raise TypeError("`logits_seq` must be a list or tuple of [B, *spatial, C] logits, "
                            f"got {type(logits_seq).__name__}.")
        shapes = [tuple(np.shape(x)) for x in logits_seq]
        labels_shape = tuple(np.shape(labels))
        dense = bool(shapes) and len(labels_shape) == len(shapes[0])
        checks.check_supervision_outputs(shapes, labels_shape, dense)
        w = _weights(weights, len(shapes))
        full = labels_shape[:len(shapes[0]) - 1]  # [B, *spatial] of the labels
        for key, value in kwargs.items():
            if key != "where" and np.ndim(value) >= len(full) and np.shape(value)[
                    :len(full)] == full and full[1:] != shapes[-1][1:-1]:
                raise ValueError(
                    f"keyword `{key}` has shape {np.shape(value)}, a per-pixel array at the "
                    f"resolution of `labels` {full}: deep_supervision resamples only `labels` "
                    "and `where`; call the loss per output with a map of each output's size.")
        where = kwargs.pop("where", None)
        if where is not None:
            where = jnp.asarray(where)
            where = where.reshape((1,) * (len(full) - where.ndim) + where.shape)
        labels = jnp.asarray(labels)
        total: jax.Array | None = None
        for w_i, logits in zip(w, logits_seq, strict=True):
            spatial = np.shape(logits)[1:-1]
            if where is not None:
                kwargs["where"] = resample_nearest(where, spatial)
            term = w_i * loss(logits, resample_nearest(labels, spatial), **kwargs)
            if total is not None and jnp.shape(term) != jnp.shape(total):
                raise ValueError(
                    f"`loss` returned shape {jnp.shape(term)} at an output of spatial shape "
                    f"{spatial} but {jnp.shape(total)} at the first: use a reduction that "
                    "does not depend on the resolution (\"mean\" or \"sum\").")
            total = term if total is None else total + term
        assert total is not None  # at least one output (checked above)
        return total / (sum(w) if isinstance(w, list) else jnp.sum(jnp.asarray(w)))

    supervised.__name__ = supervised.__qualname__ = "deep_supervised"
    supervised.__doc__ = (f"Deep supervision of {getattr(loss, '__name__', repr(loss))} "
                          f"(weights={weights!r}), made by segloss_jax.deep_supervision.")
    return supervised


def combine(
    weights: Mapping[str, float],
    *,
    per_loss: Mapping[str, Mapping[str, Any]] | None = None,
    **shared_kwargs: Any,
) -> Callable[..., jax.Array]:
    r"""A weighted sum of registered losses, as one pure function.

    .. math::

       L(x, y) = \sum_k w_k\, L_k(x, y;\ \text{shared}, \text{per\_loss}_k)

    Returns ``fn(logits, labels, **kwargs)``, usable inside ``jit``, ``grad`` and
    ``vmap``. Every member gets ``shared_kwargs`` (e.g. ``ignore_index``,
    ``where``, ``activation``), then its own entry of ``per_loss``, then the
    keywords of the call, later ones overriding earlier ones.

    Everything that can be checked is checked here, once: unknown names raise
    the registry's ``KeyError`` with close matches; a keyword a member does not
    accept (``inspect.signature``) raises ``TypeError`` naming the loss and the
    keyword; an ``activation`` a member does not support, or members that would
    silently use different default activations (``dice`` defaults to softmax,
    ``binary_cross_entropy`` to sigmoid), raise ``ValueError``.

    Args:
      weights: ``{name: weight}`` with registry names (:func:`list_losses`) and
        non-negative Python numbers (or scalars).
      per_loss: optional ``{name: {keyword: value}}`` for one member only, e.g.
        ``{"focal": {"gamma": 1.0}}``.
      **shared_kwargs: keywords passed to every member.

    Returns:
      ``fn(logits, labels, **kwargs) -> scalar``; ``fn.weights`` holds the weights.

    Examples:
      >>> import jax.numpy as jnp
      >>> import segloss_jax as sl
      >>> loss_fn = sl.combine({"dice": 1.0, "cross_entropy": 0.5}, ignore_index=255)
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]])
      >>> labels = jnp.array([[0, 1, 255]])
      >>> print(f"{loss_fn(logits, labels):.4f}")
      0.3052
      >>> sl.combine({"dice": 1.0, "cross_entropy": 1.0}, smooth=1.0)
      Traceback (most recent call last):
        ...
      TypeError: combine: loss 'cross_entropy' (cross_entropy) does not accept keyword 'smooth'; ...
    """
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"`weights` must be a non-empty dict {{name: weight}}, got {weights!r}.")
    per_loss = dict(per_loss or {})
    for name in per_loss:
        if name not in weights:
            raise KeyError(f"combine: per_loss names {name!r}, which is not in `weights` "
                           f"({', '.join(map(repr, weights))}).")
    members: list[tuple[str, Any, LossInfo, frozenset[str] | None, dict[str, Any]]] = []
    for name, weight in weights.items():
        info = loss_info(name)  # KeyError with close matches
        if not isinstance(weight, numbers.Real | jax.Array) or isinstance(weight, bool):
            raise TypeError(f"combine: the weight of {name!r} must be a number, got {weight!r}.")
        checks.check_nonnegative(f"weights[{name!r}]", weight)
        accepted = accepted_keywords(info.fn)
        own = dict(per_loss.get(name, {}))
        check_keywords(name, info.fn, accepted, {**shared_kwargs, **own})
        members.append((name, weight, info, accepted, own))

    def activation_of(info, own):
        if "activation" in own:
            return own["activation"]
        if "activation" in shared_kwargs:
            return shared_kwargs["activation"]
        param = inspect.signature(info.fn).parameters.get("activation")
        return info.activations[0] if param is None else param.default

    explicit = "activation" in shared_kwargs
    used = {}
    for name, _, info, _, own in members:
        act = activation_of(info, own)
        if act not in info.activations:
            raise ValueError(f"combine: loss {name!r} does not support activation={act!r}; "
                             f"it supports {info.activations}.")
        explicit = explicit or "activation" in own
        used[name] = act
    if not explicit and len(set(used.values())) > 1:
        raise ValueError(
            f"combine: the losses would use different default activations ({used}); pass "
            f"activation=... so that they read the logits alike.")

    def combined(logits: chex.Array, labels: chex.Array, **kwargs: Any) -> jax.Array:
        terms = []
        for name, weight, info, accepted, own in members:
            check_keywords(name, info.fn, accepted, kwargs)
            terms.append(weight * info.fn(logits, labels, **{**shared_kwargs, **own, **kwargs}))
        return functools.reduce(operator.add, terms)

    combined.__name__ = "combined"
    combined.__qualname__ = "combined"
    combined.__doc__ = ("Weighted sum of " + " + ".join(f"{w!r}·{n}" for n, w in weights.items())
                        + " (made by segloss_jax.combine).")
    combined.weights = dict(weights)  # type: ignore[attr-defined]
    return combined
