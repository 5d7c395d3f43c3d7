"""A real exported policy that always asks for the same knobs: the tests of the tuner, the job
session and the service force what is asked with it. ``tests/`` is on ``sys.path`` (its
conftest.py), so any test folder imports this as ``policy_kit``. The writer itself is
:func:`autotune.policy.write_constant` (the online bench runs the tuner with one too)."""

from __future__ import annotations

from autotune.policy import write_constant as write_constant_policy

__all__ = ["write_constant_policy"]
