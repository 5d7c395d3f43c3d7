"""The algorithms `autotune train` offers, with tiny (tests) and real hyperparameters.

Each is an SB3 (or sb3-contrib) class, the action wrapper its action space needs
(:mod:`autotune.envs.spaces`), and two sets of hyperparameters. The reward is immediate and the
knobs act within an interval, so the discount is short (``gamma=0.9``: ~10 steps, a few
seconds); phase changes are left to frame stacking or the LSTM.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from autotune.envs.spaces import BoxLevels, DiscreteStep
from autotune.errors import UserError


@dataclass(frozen=True)
class Algo:
    """One algorithm as autotune trains it."""

    name: str
    load_class: Callable[[], type[Any]]
    policy: str
    wrapper: Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]] | None
    tiny: dict[str, Any] = field(default_factory=dict)
    real: dict[str, Any] = field(default_factory=dict)
    recurrent: bool = False

    def hyperparameters(self, tiny: bool) -> dict[str, Any]:
        """A fresh copy: SB3 writes into the ``policy_kwargs`` it is given."""
        return copy.deepcopy(self.tiny if tiny else self.real)


def _sb3(name: str) -> Callable[[], type[Any]]:
    def load() -> type[Any]:
        import stable_baselines3

        cls: type[Any] = getattr(stable_baselines3, name)
        return cls

    return load


def _recurrent_ppo() -> type[Any]:
    from sb3_contrib import RecurrentPPO

    return RecurrentPPO


_TINY_NET = {"net_arch": [16]}
_REAL_NET = {"net_arch": [64, 64]}

ALGOS: dict[str, Algo] = {
    "ppo": Algo(
        "ppo",
        _sb3("PPO"),
        "MlpPolicy",
        None,
        tiny={"n_steps": 64, "batch_size": 64, "n_epochs": 2, "policy_kwargs": _TINY_NET},
        real={
            # 128 steps × 8 envs (the default --n-envs) = 1,024 a rollout.
            "n_steps": 128,
            "batch_size": 256,
            "n_epochs": 10,
            "gamma": 0.9,
            "gae_lambda": 0.9,
            # 1e-3, not SB3's 3e-4: validation 1.105 against 1.096 after 15,000 steps (seed 0,
            # the five bundled workloads); the policy here is small and the reward immediate.
            "learning_rate": 1e-3,
            "ent_coef": 0.01,
            "policy_kwargs": _REAL_NET,
        },
    ),
    "a2c": Algo(
        "a2c",
        _sb3("A2C"),
        "MlpPolicy",
        None,
        tiny={"n_steps": 8, "policy_kwargs": _TINY_NET},
        real={"n_steps": 16, "gamma": 0.9, "ent_coef": 0.01, "policy_kwargs": _REAL_NET},
    ),
    "dqn": Algo(
        "dqn",
        _sb3("DQN"),
        "MlpPolicy",
        DiscreteStep,
        tiny={"learning_starts": 32, "buffer_size": 2_000, "policy_kwargs": _TINY_NET},
        real={
            "learning_starts": 1_000,
            "buffer_size": 100_000,
            "gamma": 0.9,
            "exploration_fraction": 0.3,
            "target_update_interval": 1_000,
            "policy_kwargs": _REAL_NET,
        },
    ),
    "sac": Algo(
        "sac",
        _sb3("SAC"),
        "MlpPolicy",
        BoxLevels,
        tiny={"learning_starts": 32, "buffer_size": 2_000, "policy_kwargs": _TINY_NET},
        real={
            "learning_starts": 1_000,
            "buffer_size": 100_000,
            "gamma": 0.9,
            "policy_kwargs": _REAL_NET,
        },
    ),
    "recurrent-ppo": Algo(
        "recurrent-ppo",
        _recurrent_ppo,
        "MlpLstmPolicy",
        None,
        tiny={
            "n_steps": 64,
            "batch_size": 64,
            "n_epochs": 2,
            "policy_kwargs": {**_TINY_NET, "lstm_hidden_size": 16},
        },
        real={
            "n_steps": 256,
            "batch_size": 128,
            "n_epochs": 10,
            "gamma": 0.9,
            "ent_coef": 0.01,
            "policy_kwargs": {**_REAL_NET, "lstm_hidden_size": 64},
        },
        recurrent=True,
    ),
}


def get(name: str) -> Algo:
    """Look an algorithm up by name; unknown names are a :class:`UserError`."""
    try:
        return ALGOS[name]
    except KeyError:
        raise UserError(f"unknown algorithm {name!r}; choose one of {', '.join(ALGOS)}") from None
