PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The floors are tested on the oldest Python the package supports.
PYTHON_OLDEST ?= python3.11
VENV_OLDEST := .venv-oldest
PY_OLDEST := $(VENV_OLDEST)/bin/python
STAMP_OLDEST := $(VENV_OLDEST)/.installed
# A few minutes at the floors: the public API and registry, the input forms, the README's
# jitted train step and every docstring example of the package (each public function once).
SMOKE := tests/test_api.py tests/test_registry.py tests/test_inputs.py tests/test_readme.py

.PHONY: install test test-oldest test-oldest-smoke lint bench demo docs docs-check clean

# A fresh machine needs only Python and pip: the virtualenv and every dependency
# come from pyproject.toml (the examples, integrations and docs extras are included
# because the example smoke tests train a few steps of the U-Net, the docs tests run
# the Equinox and Keras train steps of docs/integration.md and `make docs` builds the site).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,examples,integrations,docs]"
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Two workers: the suite is dominated by single-threaded XLA compilation. The contract
# tests of one loss share compiled programs; tests/conftest.py puts them next to each other
# and pytest-xdist hands out runs of consecutive tests, so mostly one worker compiles them.
test: lint
	$(PY) -m pytest -q -n 2 tests segloss_jax --doctest-modules

# The floors that pyproject.toml promises (pinned in constraints-oldest.txt), in a
# virtualenv of its own (.venv keeps the newest): code that needs a newer jax, chex,
# numpy or optax than the floors fails here, not for a user. Runtime and dev only.
$(STAMP_OLDEST): pyproject.toml constraints-oldest.txt
	test -x $(PY_OLDEST) || $(PYTHON_OLDEST) -m venv $(VENV_OLDEST)
	$(PY_OLDEST) -m pip install --quiet --upgrade pip
	$(PY_OLDEST) -m pip install --quiet -c constraints-oldest.txt -e ".[dev]"
	touch $@

# The smoke subset at the floors (run by .ci/run), lint included.
test-oldest-smoke: $(STAMP_OLDEST)
	$(VENV_OLDEST)/bin/ruff check .
	$(PY_OLDEST) -m pytest -q -n 2 $(SMOKE) --doctest-modules segloss_jax

# The whole suite at the floors, with the example and framework extras on top.
test-oldest: $(STAMP_OLDEST)
	$(PY_OLDEST) -m pip install --quiet -c constraints-oldest.txt -e ".[dev,examples,integrations]"
	$(PY_OLDEST) -m pytest -q -n 2 tests segloss_jax --doctest-modules

bench: $(STAMP)
	$(PY) -m benchmarks.run

# Trains the U-Net with several losses on the built-in synthetic data.
demo: $(STAMP)
	$(PY) -m examples.unet.compare --out demo_out

# HTML docs, warnings as errors.
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# The built site as a browser shows it, offline: links, scripts and typeset maths of
# every page (needs Debian's chromium; --screenshots DIR saves a PNG of each page).
docs-check: docs
	$(PY) docs/check_site.py docs/_build/html

clean:
	rm -rf $(VENV) $(VENV_OLDEST) .pytest_cache .ruff_cache .hypothesis *.egg-info \
		docs/_build docs/_generated docs/api/_autosummary
