"""Test configuration: 8 simulated CPU devices and strict rank promotion.

The XLA flag must be set before JAX is imported anywhere, hence at the top of
this file (pytest imports conftest first).
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import jax  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "default",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile("default")


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
