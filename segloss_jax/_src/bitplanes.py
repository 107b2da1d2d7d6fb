"""Binary images as bit planes: 32 elements to a ``uint32`` word along the last axis.

Boolean morphology on planes does 32 elements per operation and no gather, which
is what makes the exact skeletons (:mod:`segloss_jax._src.skeletonize`) and the
boundary bands (:mod:`segloss_jax._src.metrics.boundary`) fast on CPU.

Layout: a bool ``[*lead, n]`` image packs to ``[words, *lead]`` with
``words = ceil(n / 32)``; element ``j`` of the last axis is bit ``j % 32`` of word
``j // 32``, and the padding bits beyond ``n`` are 0. The word axis comes first so
that the minor axis stays long (XLA vectorises along it). Outside the image is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

WORD = 32


def _bit_positions(ndim: int) -> jax.Array:
    """``0, 1, ..., 31`` along the last of ``ndim`` axes."""
    return jnp.arange(WORD, dtype=jnp.uint32).reshape((1,) * (ndim - 1) + (WORD,))


def pack(mask: jax.Array) -> jax.Array:
    """Bool ``[*lead, n]`` -> uint32 ``[ceil(n / 32), *lead]`` (the module's layout)."""
    n = mask.shape[-1]
    words = -(-n // WORD)
    mask = jnp.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, words * WORD - n)])
    bits = mask.reshape(*mask.shape[:-1], words, WORD).astype(jnp.uint32)
    packed = jnp.sum(bits << _bit_positions(bits.ndim), axis=-1, dtype=jnp.uint32)
    return jnp.moveaxis(packed, -1, 0)


def unpack(planes: jax.Array, n: int) -> jax.Array:
    """The inverse of :func:`pack`: bool ``[*lead, n]``."""
    words = jnp.moveaxis(planes, 0, -1)
    bits = (words[..., None] >> _bit_positions(words.ndim + 1)) & 1
    return bits.reshape(*words.shape[:-1], -1)[..., :n] != 0


def ones_like(plane: jax.Array) -> jax.Array:
    return jnp.full_like(plane, 0xFFFFFFFF)


def count(planes: jax.Array) -> jax.Array:
    """The number of set bits (int32)."""
    return jnp.sum(lax.population_count(planes).astype(jnp.int32))


def _moved(x: jax.Array, axis: int, step: int) -> jax.Array:
    """``x`` moved along ``axis``: entry ``i`` holds ``x[i + step]``, 0 beyond the ends."""
    n = x.shape[axis]
    if step == 0:
        return x
    if abs(step) >= n:
        return jnp.zeros_like(x)
    pads = [(0, 0)] * x.ndim
    pads[axis] = (max(-step, 0), max(step, 0))
    start = [0] * x.ndim
    start[axis] = max(step, 0)
    limit = list(x.shape)
    limit[axis] = start[axis] + n
    return lax.slice(jnp.pad(x, pads), start, limit)


def shift(planes: jax.Array, offset: Sequence[int]) -> jax.Array:
    """The plane holding, at every element, the element at ``+offset`` (0 outside the
    image); ``offset`` has one entry per image axis, the last for the packed axis."""
    *lead, step = offset
    for axis, d in enumerate(lead, start=1):
        planes = _moved(planes, axis, d)
    if step == 0:
        return planes
    # Element 32j + b + step lies in word j + q, bit b + r (s = 32q + r, 0 <= r < 32),
    # or in the next word when b + r >= 32.
    q, r = divmod(step, WORD)
    low = _moved(planes, 0, q)
    if r == 0:
        return low
    return (low >> r) | (_moved(planes, 0, q + 1) << (WORD - r))
