"""Name -> loss registry.

Each loss registers itself where it is defined with :func:`register`; the name
is the function name without a trailing ``_loss`` (``dice_loss`` -> ``"dice"``).
The recorded :class:`LossInfo` tells generic code (the contract tests, the
benchmarks, :func:`segloss_jax.combine`) how the loss may be called.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from segloss_jax._src.families import family_of
from segloss_jax._src.types import ACTIVATIONS, activations_of

LossFn = TypeVar("LossFn", bound=Callable[..., Any])

_REGISTRY: dict[str, LossInfo] = {}


@dataclasses.dataclass(frozen=True)
class LossInfo:
    """How a registered loss may be called.

    Attributes:
      name: registry name.
      fn: the loss function ``fn(logits, labels, **kwargs)``.
      activations: the ``activation`` values the loss accepts, default first (read
        from the annotation of its ``activation`` parameter).
      kind: its family's key in :mod:`segloss_jax._src.families` (``"pixelwise"``,
        ``"region"``, ``"lovasz"``, ``"boundary"``, ``"compound"``, ...).
      labels: the label forms it accepts: ``"integer"`` (``[B, *spatial]`` class
        indices) and ``"dense"`` (``[B, *spatial, C]`` targets).
    """

    name: str
    fn: Callable[..., Any]
    activations: tuple[str | None, ...] = ACTIVATIONS
    kind: str = "pixelwise"
    labels: tuple[str, ...] = ("integer", "dense")


def loss_name(fn: Callable[..., Any]) -> str:
    name = fn.__name__
    return name[: -len("_loss")] if name.endswith("_loss") else name


def _activations(fn: Callable[..., Any]) -> tuple[str | None, ...]:
    """The activations ``fn`` accepts, its default first, from the annotation of its
    ``activation`` parameter (:mod:`segloss_jax._src.types`); a loss without one reads
    logits through a sigmoid (the Lovász hinge)."""
    param = inspect.signature(fn).parameters.get("activation")
    if param is None:
        return ("sigmoid",)
    annotation = param.annotation
    if isinstance(annotation, str):  # postponed annotations
        annotation = eval(annotation, fn.__globals__)  # noqa: S307 (the module's own names)
    accepted = activations_of(annotation)
    return (param.default, *(a for a in accepted if a != param.default))


def register(
    *, labels: tuple[str, ...] = ("integer", "dense")
) -> Callable[[LossFn], LossFn]:
    """Decorator adding a loss to the registry under :func:`loss_name`, with the kind of
    its family (:mod:`segloss_jax._src.families`), the activations its ``activation``
    annotation admits and the label forms (``labels``) it accepts. The decorated
    function is returned as it is, so type checkers see its signature."""

    def decorator(fn: LossFn) -> LossFn:
        name = loss_name(fn)
        old = _REGISTRY.get(name)
        # Re-importing the defining module (e.g. doctest collection) re-registers.
        if old is not None and old.fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"A loss named {name!r} is already registered.")
        _REGISTRY[name] = LossInfo(name, fn, _activations(fn), family_of(fn.__name__).key,
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


def registered_names() -> tuple[str, ...]:
    """Names of every registered loss, sorted."""
    return tuple(sorted(_REGISTRY))


def accepted_keywords(fn: Callable[..., Any]) -> frozenset[str] | None:
    """Keywords ``fn`` accepts after ``logits, labels``; ``None`` if it takes ``**kwargs``."""
    params = list(inspect.signature(fn).parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    named = (p for p in params[2:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    return frozenset(p.name for p in named)


def check_keywords(name: str, fn: Callable[..., Any], accepted: frozenset[str] | None,
                   keywords: Mapping[str, Any]) -> None:
    """``TypeError`` naming the loss and every keyword of ``keywords`` it does not accept."""
    if accepted is None:
        return
    unknown = sorted(set(keywords) - accepted)
    if unknown:
        raise TypeError(
            f"combine: loss {name!r} ({fn.__name__}) does not accept keyword "
            f"{', '.join(map(repr, unknown))}; it accepts {', '.join(sorted(accepted))}. "
            f"Pass keywords for one loss only with per_loss={{{name!r}: {{...}}}}.")
