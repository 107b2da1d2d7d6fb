"""Test configuration: 8 simulated CPU devices and strict rank promotion.

The XLA flag must be set before JAX is imported anywhere, hence at the top of
this file (pytest imports conftest first).
"""

import os
import subprocess
import sys

# XLA:CPU's older fusion code generator: the suite compiles thousands of small programs that
# run a few times each, and it compiles them in about half the time of the default emitters
# (the whole suite on 2 cores: 16.5 -> 10 min); one code-generation thread per worker saves
# a further 5 % (-n 2 keeps both cores busy). One kind of program it cannot compile: the 3D
# Lee skeleton, whose fused bit-plane test it expands without end (over 13 GB and still
# compiling after 2 minutes). Tests compile those with `xla_options.DEFAULT_EMITTERS`, and
# pytest-timeout (pyproject.toml) stops a test that compiles one by mistake.
FAST_COMPILE = "--xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1"


def _xla_accepts(flags: str) -> bool:
    """Whether this jaxlib knows ``flags``: XLA aborts the process on an unknown flag, so a
    jaxlib that has dropped one runs the suite with its defaults instead."""
    env = {**os.environ, "XLA_FLAGS": flags}
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], env=env,
                           capture_output=True, check=False)
    return probe.returncode == 0


# The pytest-xdist workers inherit the controller's XLA_FLAGS, so only the first process probes.
_flags = os.environ.get("XLA_FLAGS", "")
if FAST_COMPILE not in _flags and _xla_accepts(FAST_COMPILE):
    _flags += " " + FAST_COMPILE
os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

import gc  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# Compiling dominates the suite's time, and the tests compile small programs that run once
# or a few times: XLA's expensive optimisations cost more than they save here. Users keep
# them; tests/test_backend.py and the benchmarks look at optimised programs.
jax.config.update("jax_disable_most_optimizations", True)

# Many tests build the same program anew (a fresh lambda or partial around the same loss);
# a compilation cache keyed by the program lets them, and the other pytest-xdist worker,
# reuse it. The cache is new for each run: the first process to load this file (the xdist
# controller, which loads it before it starts its workers) makes the directory, the workers
# inherit it through the environment, and the maker removes it at the end of the session.
_OWNS_CACHE = "SEGLOSS_JAX_TEST_CACHE" not in os.environ
if _OWNS_CACHE:
    os.environ["SEGLOSS_JAX_TEST_CACHE"] = tempfile.mkdtemp(prefix="segloss_jax_tests_")
CACHE_DIR = os.environ["SEGLOSS_JAX_TEST_CACHE"]
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

settings.register_profile(
    "default",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("default")


# Tracing makes millions of short-lived objects, and Python's default thresholds then run a
# full collection every few seconds over everything imported and collected: about 6 % of a
# contract run's time (timed with gc.callbacks), 1.5 % with these thresholds and the
# collected tests frozen out of the scans.
gc.set_threshold(100_000, 50, 100)


def pytest_collection_finish(session):
    gc.collect()
    gc.freeze()


def pytest_sessionfinish(session):
    if _OWNS_CACHE:  # the controller, after its workers (or a run without xdist)
        shutil.rmtree(CACHE_DIR, ignore_errors=True)


def pytest_collection_modifyitems(items):
    """The contract tests of one loss next to each other: they share compiled programs, and
    pytest-xdist hands out runs of consecutive tests, so one worker compiles them."""
    files: dict = {}
    key = {i: (files.setdefault(item.path, len(files)), mark.args[0])
           for i, item in enumerate(items) if (mark := item.get_closest_marker("xdist_group"))}
    slots = list(key)
    ordered = [items[i] for i in sorted(slots, key=key.__getitem__)]
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item
