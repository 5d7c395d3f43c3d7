"""Actuators: the agent's hands on the node (weights, CPU affinity, read-ahead, prefetch depth).

:class:`Actuators` is the API (see :mod:`autotune.actuators.session`); :class:`DecisionLog` is
where every change is logged. Each knob family acts through one backend
(:class:`~autotune.actuators.backend.Backend`), chosen, built and restored through
:mod:`autotune.actuators.registry`.
"""

from autotune.actuators.decisions import Decision, DecisionLog
from autotune.actuators.session import Actuators

__all__ = ["Actuators", "Decision", "DecisionLog"]
