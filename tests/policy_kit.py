"""A real exported policy that always asks for the same knobs: the tests of the tuner, the job
session and the service force what is asked with it. ``tests/`` is on ``sys.path`` (its
conftest.py), so any test folder imports this as ``policy_kit``. The writer itself is
:func:`autotune.policy.write_constant` (the online bench runs the tuner with one too)."""

from __future__ import annotations

from autotune.policy import write_constant as write_constant_policy

# The guard's settings for a service under test (tests/service, and the cgroup v2 VM's): short
# windows, so that a change shows within seconds; weights without the quiet-node rule (a test
# node is quiet); and only a large fall rolls a change back (a shared CI node is noisy).
FAST_GUARD = {
    "AUTOTUNE_GUARD_MIN_CONTENTION": "0",
    "AUTOTUNE_GUARD_WARMUP_S": "1",
    "AUTOTUNE_GUARD_DWELL_S": "1",
    "AUTOTUNE_GUARD_CANARY_S": "1",
    "AUTOTUNE_GUARD_THRESHOLD": "0.9",
    "AUTOTUNE_GUARD_FALLBACK_MARGIN": "0.9",
}

__all__ = ["FAST_GUARD", "write_constant_policy"]
