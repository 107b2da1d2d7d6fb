"""Static argument checks (``segloss_jax/_src/checks.py``): label forms, logits, messages."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from segloss_jax._src import checks


def test_label_form_by_dtype_and_rank():
    shape = (2, 4, 4, 3)
    assert checks.label_form(jnp.zeros((2, 4, 4), jnp.int32), shape) == "int"
    assert checks.label_form(jnp.zeros((2, 4, 4), bool), shape) == "int"
    assert checks.label_form(jnp.zeros(shape, jnp.float32), shape) == "dense"
    assert checks.label_form(jnp.zeros(shape, bool), shape) == "dense"
    # A dense target whose values happen to be integral is still dense (no guessing).
    assert checks.label_form(jnp.ones(shape, jnp.float32), shape) == "dense"


@pytest.mark.parametrize(
    "labels,exc,match",
    [
        (np.zeros((2, 4, 4, 3), np.int32), TypeError, "dense targets and must be floating"),
        (np.zeros((2, 4, 4), np.float32), TypeError, "must be integer"),
        (np.zeros((2, 4, 4, 2), np.float32), ValueError, "2 classes"),
        (np.zeros((2, 4, 5), np.int32), ValueError, r"expected \(2, 4, 4\)"),
        (np.zeros((2, 4, 4), np.complex64), TypeError, "dtype complex64"),
    ],
)
def test_label_form_errors(labels, exc, match):
    with pytest.raises(exc, match=match):
        checks.label_form(jnp.asarray(labels), (2, 4, 4, 3))


def test_check_logits_messages():
    with pytest.raises(TypeError, match="`logits` must be a floating array.*int32"):
        checks.check_logits(jnp.zeros((1, 2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"got shape \(2, 3\) \(rank 2\)"):
        checks.check_logits(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="rank 6"):
        checks.check_logits(jnp.zeros((1, 2, 2, 2, 2, 3)))
