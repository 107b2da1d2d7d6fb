"""The registry (``registry.py``) and the table of families (``families.py``)."""

from __future__ import annotations

import pytest
import reference as ref

import segloss_jax as sl
from segloss_jax._src import families
from segloss_jax._src.registry import loss_info


def test_registry_round_trip_and_errors():
    names = sl.list_losses()
    assert names == tuple(sorted(names))
    for name in names:
        fn = sl.get_loss(name)
        assert fn.__name__ in (name, f"{name}_loss")
        assert getattr(sl, fn.__name__) is fn
    with pytest.raises(KeyError, match="Did you mean 'cross_entropy'"):
        sl.get_loss("cross_entopy")
    with pytest.raises(KeyError, match="Unknown loss 'zzz'"):
        sl.get_loss("zzz")


def test_kind_is_the_family_key():
    keys = {family.key for family in families.FAMILIES}
    for name in sl.list_losses():
        info = loss_info(name)
        assert info.kind in keys, name
        assert info.kind == families.family_of(info.fn.__name__).key, name
    with pytest.raises(KeyError, match="in no family"):
        families.family_of("not_a_loss")


def test_every_family_name_is_exported_once():
    names = [name for family in families.FAMILIES for name in family.names]
    assert len(names) == len(set(names)), "a name is in two families"
    assert tuple(sl.__all__) == families.public_names() == tuple(names)
    for name in names:
        assert hasattr(sl, name), name


def test_region_losses_are_registered():
    for name in ref.REGION_LOSSES:
        info_name = name[: -len("_loss")]
        assert sl.get_loss(info_name) is getattr(sl, name)
        assert info_name in sl.list_losses()


def test_registered_as_compound():
    for name in ("combo", "exp_log", "dice_ce", "dice_focal"):
        info = loss_info(name)
        assert info.kind == "compound" and info.activations[0] == "softmax"
        assert sl.get_loss(name) is getattr(sl, f"{name}_loss")


def test_module_lists_are_the_family_table():
    """The ``__all__`` of the modules segloss_jax star-imports list exactly the family
    table's names, once each: a public function is added in its module and the table."""
    import ast
    import importlib
    import pathlib

    init = pathlib.Path(sl.__file__).read_text()
    modules = [node.module for node in ast.parse(init).body
               if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names)]
    listed = [name for module in modules for name in importlib.import_module(module).__all__]
    assert len(listed) == len(set(listed)), "a name is in two modules' __all__"
    assert set(listed) == set(families.public_names())
