"""The one way an eager call is compiled: :func:`kernel`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

import jax

P = ParamSpec("P")
R = TypeVar("R")


def kernel(fn: Callable[P, R]) -> Callable[P, R]:
    """Compiles ``fn`` as one program; its keyword-only parameters are static.

    Run eagerly op by op, a loss stage (a distance transform, a sort, a
    confusion count) compiles dozens of small programs on its first call and is
    several times slower than one program per stage (see
    benchmarks/RESULTS.md); under an outer ``jit`` this is simply inlined.
    """
    params = inspect.signature(fn).parameters.values()
    static = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    return cast(Callable[P, R], jax.jit(fn, static_argnames=static))
