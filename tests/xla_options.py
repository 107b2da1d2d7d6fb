"""Compiler options for the few test programs that need XLA:CPU's default fusion emitters.

tests/conftest.py compiles the suite with the older emitter (``--xla_cpu_use_fusion_emitters
=false``), which halves the suite's compile time. Two kinds of program need the default:

* the 3D Lee skeleton (:func:`segloss_jax.skeletonize` of a 3D mask, and the skeleton targets
  and losses built on it): the older emitter expands its fused bit-plane test (about 1,260
  boolean operations on 26 shifted neighbours) without end;
* finite differences across the ties of grey-level erosion and dilation (clDice's soft
  skeleton): the older emitter may compute two copies of one tied value by different
  instruction sequences, so a tie breaks one way at ``x + εv`` and the other at ``x − εv``.

Users compile with the default emitters; this only undoes the suite's setting.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax

# Empty where the suite runs with XLA's defaults (a jaxlib without the flag: tests/conftest.py).
DEFAULT_EMITTERS = ({"xla_cpu_use_fusion_emitters": True}
                    if "--xla_cpu_use_fusion_emitters=false" in os.environ.get("XLA_FLAGS", "")
                    else {})


def jit_default_emitters(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` compiled with XLA:CPU's default fusion emitters."""
    return jax.jit(fn, compiler_options=DEFAULT_EMITTERS, **kwargs)
