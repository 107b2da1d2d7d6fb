"""The public surface: names, signatures and docstrings of everything exported."""

from __future__ import annotations

import inspect

import pytest

import segloss_jax as sl
from segloss_jax._src.registry import loss_info

PUBLIC = [name for name in sl.__all__ if callable(getattr(sl, name))]
LOSSES = sl.list_losses()


def test_all_is_exact_and_importable():
    assert len(set(sl.__all__)) == len(sl.__all__)
    for name in sl.__all__:
        assert hasattr(sl, name), name
    public = {n for n in dir(sl) if not n.startswith("_")}
    # Modules imported into the namespace are not part of the API.
    public = {n for n in public if not inspect.ismodule(getattr(sl, n))}
    assert public <= set(sl.__all__), public - set(sl.__all__)


@pytest.mark.parametrize("name", LOSSES)
def test_every_registered_loss_is_exported(name):
    fn = sl.get_loss(name)
    assert fn.__name__ in sl.__all__


@pytest.mark.parametrize("name", LOSSES)
def test_loss_signature(name):
    params = list(inspect.signature(sl.get_loss(name)).parameters.values())
    assert [p.name for p in params[:2]] == ["logits", "labels"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:2])
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:]), name
    info = loss_info(name)
    if "activation" in {p.name for p in params}:
        default = inspect.signature(info.fn).parameters["activation"].default
        assert default == info.activations[0], "the registered default comes first"


@pytest.mark.parametrize("name", PUBLIC)
def test_defaulted_arguments_are_keyword_only(name):
    if inspect.isclass(getattr(sl, name)):
        return
    for p in inspect.signature(getattr(sl, name)).parameters.values():
        if p.default is not p.empty:
            assert p.kind is p.KEYWORD_ONLY, f"{name}: `{p.name}` has a default but is positional"


@pytest.mark.parametrize("name", PUBLIC)
def test_docstring_has_example_and_reference(name):
    doc = inspect.getdoc(getattr(sl, name)) or ""
    assert ">>>" in doc, f"{name} has no doctest example"
    assert "Args:" in doc or inspect.isclass(getattr(sl, name)) or name in ("list_losses",)
    if name in {sl.get_loss(n).__name__ for n in LOSSES}:
        assert "References:" in doc, name
        assert ".. math::" in doc, name
        assert "Returns:" in doc, name
