"""The types of the public signatures, named once.

The ``activation`` annotation of a loss is also its list of accepted
activations: :func:`segloss_jax._src.registry.register` reads it (default
first) and :func:`activations_of` turns it into the tuple the runtime check
uses, so a loss names its activations in exactly one place.
"""

from __future__ import annotations

import typing
from collections.abc import Hashable, Sequence
from typing import Literal, TypeAlias

import jax

# Arrays as users pass them: JAX or NumPy arrays, Python numbers, nested lists.
ArrayLike: TypeAlias = jax.typing.ArrayLike | Sequence[float]
# A hyperparameter: a Python number, or an array (it may be traced).
Scalar: TypeAlias = float | jax.Array

# Activation of the logits (``None``: ``logits`` already holds probabilities).
AnyActivation: TypeAlias = Literal["softmax", "sigmoid"] | None
SoftmaxActivation: TypeAlias = Literal["softmax"] | None  # exclusive classes only
SoftmaxOnly: TypeAlias = Literal["softmax"]  # needs the logits themselves
SigmoidActivation: TypeAlias = Literal["sigmoid"] | None  # independent channels only
SigmoidOnly: TypeAlias = Literal["sigmoid"]
LogitActivation: TypeAlias = Literal["softmax", "sigmoid"]  # logits, not probabilities

Reduction: TypeAlias = Literal["mean", "sum", "none"]
ClassMode: TypeAlias = Literal["all", "present"]
# ``smooth``: one constant for numerator and denominator, or a pair (s_num, s_den).
Smooth: TypeAlias = float | tuple[float, float]
AxisName: TypeAlias = Hashable | None

ACTIVATIONS: tuple[str | None, ...] = ("softmax", "sigmoid", None)
REDUCTIONS: tuple[str, ...] = typing.get_args(Reduction)
CLASS_MODES: tuple[str, ...] = typing.get_args(ClassMode)


def activations_of(annotation: object) -> tuple[str | None, ...]:
    """The activation values an ``activation`` annotation admits, in its order
    (``Literal["sigmoid"] | None`` -> ``("sigmoid", None)``)."""
    if typing.get_origin(annotation) is Literal:
        return tuple(typing.get_args(annotation))
    if annotation is None or annotation is type(None):
        return (None,)
    values = [value for arg in typing.get_args(annotation) for value in activations_of(arg)]
    return tuple(dict.fromkeys(values))
