"""A compact 2D U-Net in Flax NNX, channels-last ``[B, H, W, C]``.

GroupNorm instead of BatchNorm: it keeps no running statistics, so the model
has no mutable state besides parameters and behaves the same whatever the
per-device batch size under data parallelism.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


class ConvBlock(nnx.Module):
    """Two (3x3 conv -> GroupNorm -> ReLU) layers."""

    def __init__(self, in_features: int, out_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        groups = math.gcd(out_features, 8)  # up to 8 groups that divide the width
        kw = dict(dtype=dtype, param_dtype=dtype, rngs=rngs)
        self.conv1 = nnx.Conv(in_features, out_features, (3, 3), use_bias=False, **kw)
        self.norm1 = nnx.GroupNorm(out_features, num_groups=groups, **kw)
        self.conv2 = nnx.Conv(out_features, out_features, (3, 3), use_bias=False, **kw)
        self.norm2 = nnx.GroupNorm(out_features, num_groups=groups, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.norm1(self.conv1(x)))
        return nnx.relu(self.norm2(self.conv2(x)))


class UNet(nnx.Module):
    """U-Net with ``depth`` 2x down-samplings; width doubles at each level.

    Args:
      in_features: image channels.
      num_classes: output channels (logits, no activation).
      width: channels of the first level.
      depth: number of max-pool / transposed-conv stages; H and W must be
        divisible by ``2**depth``.
      dtype: parameters and activations (e.g. ``jnp.bfloat16``); the logits are
        returned in float32, so the loss is computed in full precision.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        width: int = 16,
        depth: int = 3,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        widths = [width * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.dtype = dtype
        kw = dict(dtype=dtype, rngs=rngs)
        self.down = nnx.List(
            [ConvBlock(in_features, widths[0], **kw)]
            + [ConvBlock(widths[i], widths[i + 1], **kw) for i in range(depth)]
        )
        self.upsample = nnx.List(
            [
                nnx.ConvTranspose(
                    widths[i + 1], widths[i], (2, 2), strides=(2, 2), param_dtype=dtype, **kw
                )
                for i in reversed(range(depth))
            ]
        )
        # After concatenating the skip connection the block sees 2x the width.
        self.up = nnx.List(
            [ConvBlock(2 * widths[i], widths[i], **kw) for i in reversed(range(depth))]
        )
        self.head = nnx.Conv(widths[0], num_classes, (1, 1), param_dtype=dtype, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        h, w = x.shape[1:3]
        if h % 2**self.depth or w % 2**self.depth:
            raise ValueError(f"H, W = {h}, {w} must be divisible by 2**depth = {2**self.depth}")
        x = x.astype(self.dtype)
        skips = []
        for i, block in enumerate(self.down):
            if i > 0:
                x = nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2))
            x = block(x)
            skips.append(x)
        skips.pop()  # the bottleneck output is `x` itself
        for upsample, block in zip(self.upsample, self.up, strict=True):
            x = upsample(x)
            x = block(jnp.concatenate([x, skips.pop()], axis=-1))
        return self.head(x).astype(jnp.float32)
