"""A type checker sees every public signature: a misspelt keyword is an error.

The test writes a usage file that calls every public function of segloss_jax
(every registered loss, metric, distance transform and helper of
``segloss_jax.__all__``) and every public method of its classes, each call on
its own line: once with a misspelt keyword and once spelt right. mypy must
report ``Unexpected keyword argument`` on every misspelt line and nothing on
the others; a decorator or wrapper that erased a signature to
``Callable[..., Any]`` would let the misspelt call pass and fail this test.

mypy follows the imports silently (``--follow-imports=silent``): it reads
segloss_jax and JAX for their types, reporting errors of the usage file only.
Its cache lives in pytest's cache directory: a cold run takes about 16 s of
CPU (mostly reading JAX), a repeated one about 1 s.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import segloss_jax as sl

# A typo no signature accepts, for calls without a keyword-only parameter.
MADE_UP = "definitely_not_a_keyword"

# Public callables that take ``**kwargs`` on purpose, so no checker can flag a typo:
# combine forwards the shared keywords to its losses and raises a TypeError naming
# any keyword a loss does not accept.
FORWARDS_KEYWORDS = {"combine"}


def _misspelt(name: str, taken: set[str]) -> str:
    """``name`` with its last letter dropped (``per_image`` -> ``per_imag``), or with an
    ``x`` added where dropping leaves one letter or another parameter's name."""
    cut = name[:-1]
    return cut if len(cut) > 1 and cut not in taken else name + "x"


def _calls(callee: str, fn, *, method: bool = False) -> tuple[str, str, str]:
    """``(misspelt, right, typo)``: two calls of ``callee`` with every required argument
    (positional ones by position, the others by keyword) and one keyword, the
    first keyword-only parameter misspelt, or :data:`MADE_UP`."""
    params = list(inspect.signature(fn).parameters.values())[int(method):]
    keyword_only = [p for p in params if p.kind is p.KEYWORD_ONLY]
    positional = ["x" for p in params if p.default is p.empty
                  and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = {p.name for p in keyword_only if p.default is p.empty}
    if keyword_only:
        name = keyword_only[0].name
        typo = _misspelt(name, {p.name for p in params})
    else:
        name, typo = None, MADE_UP
    others = [f"{k}=x" for k in sorted(required - {name})]
    right = [*positional, *others] + ([f"{name}=x"] if name else [])
    wrong = [*positional, *others, f"{typo}=x"]
    return f"{callee}({', '.join(wrong)})", f"{callee}({', '.join(right)})", typo


def _targets() -> list[tuple[str, str, object, bool]]:
    """``(label, callee expression, callable, is instance method)`` for every public
    function (each registered loss is one of them) and every public method of a
    public class; an instance is the ``inst_<Class>`` parameter of the usage function."""
    targets = []
    for name in sl.__all__:
        obj = getattr(sl, name)
        if not callable(obj) or name in FORWARDS_KEYWORDS:
            continue
        targets.append((name, f"sl.{name}", obj, False))
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (classmethod, staticmethod)):
                    targets.append((f"{name}.{attr}", f"sl.{name}.{attr}", getattr(obj, attr),
                                    False))
                elif inspect.isfunction(member):
                    targets.append((f"{name}.{attr}", f"inst_{name}.{attr}", member, True))
    return targets


def _usage() -> tuple[str, dict[int, tuple[str, str]]]:
    """The usage file and ``{line: (label, typo keyword)}`` of its misspelt calls; no
    other line may raise an error."""
    classes = [n for n in sl.__all__ if inspect.isclass(getattr(sl, n))]
    header = [
        "from typing import Any",
        "",
        "import jax.numpy as jnp",
        "",
        "import segloss_jax as sl",
        "",
        "",
        "def usage(x: Any, " + ", ".join(f"inst_{c}: sl.{c}" for c in classes) + ") -> None:",
        # Controls with concrete values, as a user writes them.
        "    logits, labels = jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 8, 8), jnp.int32)",
    ]
    controls = [
        "    sl.dice_ce_loss(logits, labels, lambda_dice=1.0, lambda_ce=0.5, smooth=(1.0, 1.0),"
        " include_background=False, class_weights=[1.0, 2.0, 1.0], ignore_index=255)",
        "    sl.dice_loss(logits, labels, per_image=True, reduction='sum', classes='present')",
        "    sl.cross_entropy(logits, labels, label_smoothing=0.1, where=labels >= 0)",
    ]
    lines = header + controls
    misspelt: dict[int, tuple[str, str]] = {}
    for label, callee, fn, method in _targets():
        wrong, right, typo = _calls(callee, fn, method=method)
        lines.append(f"    {wrong}")
        misspelt[len(lines)] = (label, typo)
        lines.append(f"    {right}")
    return "\n".join(lines) + "\n", misspelt


def test_every_registered_loss_is_called():
    called = {label for label, *_ in _targets()}
    missing = {sl.get_loss(n).__name__ for n in sl.list_losses()} - called
    assert not missing, f"registered losses missing from the usage file: {sorted(missing)}"
    assert {n for n in sl.__all__ if callable(getattr(sl, n))} - called == FORWARDS_KEYWORDS


def test_only_the_listed_callables_take_kwargs():
    """A ``**kwargs`` parameter accepts any keyword, so it escapes the typo check."""
    takes_kwargs = {label for label, _, fn, _ in _targets()
                    if any(p.kind is p.VAR_KEYWORD
                           for p in inspect.signature(fn).parameters.values())}
    assert not takes_kwargs, f"take **kwargs, so a misspelt keyword passes: {takes_kwargs}"
    for name in FORWARDS_KEYWORDS:
        params = inspect.signature(getattr(sl, name)).parameters.values()
        assert any(p.kind is p.VAR_KEYWORD for p in params), f"{name}: drop it from the list"


def test_misspelt_keywords_are_type_errors(tmp_path, request):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[dev]')")
    text, misspelt = _usage()
    usage = tmp_path / "usage.py"
    usage.write_text(text)
    cache = getattr(request.config, "cache", None)
    cache_dir = cache.mkdir("mypy") if cache is not None else tmp_path / "mypy_cache"
    # The segloss_jax under test (this checkout), ahead of any installed copy.
    root = Path(sl.__file__).resolve().parent.parent
    env = {**os.environ, "MYPYPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--cache-dir", str(cache_dir),
         "--no-error-summary", "--hide-error-context", "--no-pretty", usage.name],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode not in (0, 1):  # 2: mypy itself failed
        pytest.fail(f"mypy failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    errors: dict[int, list[str]] = {}
    for line in result.stdout.splitlines():
        match = re.match(rf"{re.escape(usage.name)}:(\d+): error: (.*)", line)
        if match:
            errors.setdefault(int(match[1]), []).append(match[2])
    unnoticed = {label: errors.get(number, []) for number, (label, typo) in misspelt.items()
                 if not any(e.startswith(f'Unexpected keyword argument "{typo}"')
                            for e in errors.get(number, []))}
    assert not unnoticed, (
        f"mypy let a misspelt keyword pass for {sorted(unnoticed)}: their signatures are "
        f"invisible to a type checker (errors on those lines: {unnoticed}).")
    spurious = {n: errors[n] for n in sorted(errors.keys() - misspelt.keys())}
    assert not spurious, "correct calls flagged:\n" + "\n".join(
        f"{text.splitlines()[n - 1].strip()}: {msgs}" for n, msgs in spurious.items())
