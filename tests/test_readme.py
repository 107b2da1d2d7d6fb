"""The README's Python examples run as written."""

import re
from pathlib import Path

import jax
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, capsys):
    # User code follows NumPy broadcasting; the library inside stays strict.
    with jax.numpy_rank_promotion("allow"):
        exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})
    out = capsys.readouterr().out
    if "loss after 5 steps" in BLOCKS[index]:
        loss = float(out.strip().rsplit(" ", 1)[-1])
        assert 0 < loss < 2.5  # Dice (<= 1) plus a CE that started at log(4) and decreased


def test_readme_documents_the_commands():
    text = README.read_text()
    assert "make test" in text and "make demo" in text
