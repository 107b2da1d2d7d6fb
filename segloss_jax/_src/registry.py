"""Name -> loss registry.

Each loss registers itself where it is defined with :func:`register`; the name
is the function name without a trailing ``_loss`` (``dice_loss`` -> ``"dice"``).
The recorded :class:`LossInfo` tells generic code (the contract tests, the
benchmarks, :func:`segloss_jax.combine`) how the loss may be called.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable

from segloss_jax._src.families import family_of

_REGISTRY: dict[str, LossInfo] = {}


@dataclasses.dataclass(frozen=True)
class LossInfo:
    """How a registered loss may be called.

    Attributes:
      name: registry name.
      fn: the loss function ``fn(logits, labels, **kwargs)``.
      activations: the ``activation`` values the loss accepts, default first.
      kind: its family's key in :mod:`segloss_jax._src.families` (``"pixelwise"``,
        ``"region"``, ``"lovasz"``, ``"boundary"``, ``"compound"``).
      labels: the label forms it accepts: ``"integer"`` (``[B, *spatial]`` class
        indices) and ``"dense"`` (``[B, *spatial, C]`` targets).
    """

    name: str
    fn: Callable
    activations: tuple[str | None, ...] = ("softmax", "sigmoid", None)
    kind: str = "pixelwise"
    labels: tuple[str, ...] = ("integer", "dense")


def loss_name(fn: Callable) -> str:
    name = fn.__name__
    return name[: -len("_loss")] if name.endswith("_loss") else name


def register(
    *, activations: tuple[str | None, ...] = ("softmax", "sigmoid", None),
    labels: tuple[str, ...] = ("integer", "dense"),
) -> Callable[[Callable], Callable]:
    """Decorator adding a loss to the registry under :func:`loss_name`, with the kind of
    its family (:mod:`segloss_jax._src.families`), the ``activations`` (default first)
    and the label forms (``labels``) it accepts."""

    def decorator(fn: Callable) -> Callable:
        name = loss_name(fn)
        old = _REGISTRY.get(name)
        # Re-importing the defining module (e.g. doctest collection) re-registers.
        if old is not None and old.fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"A loss named {name!r} is already registered.")
        _REGISTRY[name] = LossInfo(name, fn, tuple(activations), family_of(fn.__name__).key,
                                   tuple(labels))
        return fn

    return decorator


def loss_info(name: str) -> LossInfo:
    """The :class:`LossInfo` of a registered loss; ``KeyError`` with close matches."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(
            f"Unknown loss {name!r}.{hint} Registered: {', '.join(sorted(_REGISTRY))}."
        ) from None


def get_loss(name: str) -> Callable:
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
    return tuple(sorted(_REGISTRY))
