"""Actuators: the agent's hands on the node (weights, CPU affinity, prefetch depth).

:class:`Actuators` is the API (see :mod:`autotune.actuators.session`); :class:`DecisionLog` is
where every change is logged.
"""

from autotune.actuators.decisions import Decision, DecisionLog
from autotune.actuators.session import Actuators

__all__ = ["Actuators", "Decision", "DecisionLog"]
