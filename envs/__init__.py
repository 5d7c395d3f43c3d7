"""Gymnasium environments (installed as ``autotune.envs``).

* ``autotune/Replay-v0`` (:class:`~autotune.envs.replay.ReplayEnv`): recorded workloads answered
  by a calibrated model of the node; fast, for offline training.
* ``autotune/Live-v0`` (:class:`~autotune.envs.live.LiveEnv`): real telemetry and real actuators
  on a real job, one step per control interval.

The version moves when the observation schema or the reward changes.
"""

from gymnasium.envs.registration import register, registry

REPLAY_ID = "autotune/Replay-v0"
LIVE_ID = "autotune/Live-v0"

if REPLAY_ID not in registry:
    register(id=REPLAY_ID, entry_point="autotune.envs.replay:ReplayEnv")
if LIVE_ID not in registry:
    register(id=LIVE_ID, entry_point="autotune.envs.live:LiveEnv")

__all__ = ["LIVE_ID", "REPLAY_ID"]
