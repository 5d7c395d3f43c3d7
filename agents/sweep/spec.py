"""A sweep file (TOML): the budget of every trial, early stopping, registration and the space.

Example ``sweep.toml``::

    trials = 8                # trials sampled from the space (--trials overrides)
    timesteps = 20000         # each trial's budget, as `autotune train --timesteps`
    eval_freq = 2000          # a held-out evaluation (and a report to ASHA) this often

    [asha]
    grace_evals = 2           # no trial is stopped before this many evaluations
    reduction_factor = 2      # ASHA keeps the best 1/2 at each rung

    [registry]
    name = "autotune-policy"
    alias = "champion"

    [space]
    algo = ["ppo", "a2c"]                       # a list: one of these
    seed = [0, 1, 2, 3]
    learning_rate = { loguniform = [1e-4, 3e-3] }
    gamma = { uniform = [0.8, 0.99] }
    n_steps = { randint = [16, 257] }           # upper bound excluded
    net_arch = [[16], [64, 64]]
    workloads = [["cnn", "shards"], "randread"] # subsets: a list of names, or one name

A plain value fixes the key; a list draws one of its items; a table with one of ``choice``,
``uniform``, ``loguniform`` or ``randint`` draws from that distribution; ``{ grid = [...] }``
takes every value in turn (Ray Tune's grid search: ``trials`` samples of each, so ``trials = 2``
with ``algo = { grid = ["ppo", "a2c"] }`` is four trials). A hyperparameter goes
to the algorithms whose SB3 class takes it (``n_steps`` to PPO and A2C, not DQN), and is listed
as ignored for the others. Unknown keys, a bad value or a bad bound are refused in one line.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autotune.errors import UserError
from autotune.tracking.schema import DEFAULT_ALIAS, REGISTERED_MODEL

ALGO_NAMES = ("ppo", "a2c", "dqn", "sac", "recurrent-ppo")
DISTRIBUTIONS = ("choice", "grid", "uniform", "loguniform", "randint")


def _algo(v: Any) -> bool:
    return v in ALGO_NAMES


def _int(lo: int, hi: int | None = None) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        return (
            isinstance(v, int) and not isinstance(v, bool) and v >= lo and (hi is None or v <= hi)
        )

    return ok


def _float(lo: float, hi: float | None = None, *, low_open: bool = False) -> Callable[[Any], bool]:
    def ok(v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return False
        return (v > lo if low_open else v >= lo) and (hi is None or v <= hi)

    return ok


def _subset(v: Any) -> bool:
    if isinstance(v, str):
        return bool(v)
    return isinstance(v, list) and bool(v) and all(isinstance(s, str) and s for s in v)


def _net(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(_int(1, 4096)(n) for n in v)


# Search-space key → (check of one value, what is allowed, in words).
RUN_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "algo": (_algo, "one of " + ", ".join(ALGO_NAMES)),
    "seed": (_int(0), "an integer >= 0"),
    "frame_stack": (_int(1, 16), "an integer 1 to 16"),
    "n_envs": (_int(1, 64), "an integer 1 to 64"),
    "workloads": (_subset, "a workload name, path or glob, or a list of them"),
}
# SB3 constructor arguments a sweep may set (those of the algorithms autotune trains).
HYPERPARAMETERS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "learning_rate": (_float(0.0, low_open=True), "a number > 0"),
    "gamma": (_float(0.0, 1.0), "a number 0 to 1"),
    "gae_lambda": (_float(0.0, 1.0), "a number 0 to 1"),
    "ent_coef": (_float(0.0), "a number >= 0"),
    "vf_coef": (_float(0.0), "a number >= 0"),
    "clip_range": (_float(0.0, low_open=True), "a number > 0"),
    "max_grad_norm": (_float(0.0, low_open=True), "a number > 0"),
    "tau": (_float(0.0, 1.0), "a number 0 to 1"),
    "exploration_fraction": (_float(0.0, 1.0), "a number 0 to 1"),
    "exploration_final_eps": (_float(0.0, 1.0), "a number 0 to 1"),
    "n_steps": (_int(1), "an integer >= 1"),
    "batch_size": (_int(1), "an integer >= 1"),
    "n_epochs": (_int(1), "an integer >= 1"),
    "buffer_size": (_int(1), "an integer >= 1"),
    "learning_starts": (_int(0), "an integer >= 0"),
    "train_freq": (_int(1), "an integer >= 1"),
    "gradient_steps": (_int(1), "an integer >= 1"),
    "target_update_interval": (_int(1), "an integer >= 1"),
    "net_arch": (_net, "a list of layer widths, e.g. [64, 64]"),
}
KNOWN_KEYS = {**RUN_KEYS, **HYPERPARAMETERS}

DEFAULT_SPACE: dict[str, Any] = {
    "algo": ["ppo", "a2c"],
    "seed": [0, 1, 2, 3],
    "learning_rate": {"loguniform": [1e-4, 3e-3]},
    "gamma": [0.8, 0.9, 0.95],
}


class Asha(BaseModel):
    """ASHA early stopping, on the held-out score reported at every evaluation."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    grace_evals: int = Field(default=2, ge=1, le=1000)
    reduction_factor: float = Field(default=2.0, gt=1.0, le=16.0)


class Registry(BaseModel):
    """Where the champion goes in the MLflow Model Registry."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    name: str = REGISTERED_MODEL
    alias: str = DEFAULT_ALIAS


class SweepSpec(BaseModel):
    """A whole sweep file; every field has a default, so an empty file is a sweep."""

    model_config = ConfigDict(extra="forbid")
    trials: int = Field(default=8, ge=1, le=10_000)
    timesteps: int = Field(default=20_000, ge=1)
    eval_freq: int = Field(default=2_000, ge=1)
    patience: int = Field(default=5, ge=1)
    n_envs: int = Field(default=1, ge=1, le=64)
    tiny: bool = False
    experiment: str = "autotune"
    cpus_per_trial: float = Field(default=1.0, gt=0.0, le=64.0)
    max_concurrent: int = Field(default=0, ge=0)
    search_seed: int | None = None
    asha: Asha = Field(default_factory=Asha)
    registry: Registry = Field(default_factory=Registry)
    space: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_SPACE))


def load(path: Path | None) -> SweepSpec:
    """Read and check a sweep file (None: the defaults).

    Raises:
        UserError: a missing or unreadable file, bad TOML, an unknown key or a bad value.
    """
    if path is None:
        spec = SweepSpec()
    else:
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: no such sweep file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: cannot read it ({e})") from None
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"{path}: not valid TOML ({e})") from None
        try:
            spec = SweepSpec.model_validate(raw)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "the file"
            what = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            raise UserError(f"{path}: {where}: {what}") from None
    check_space(spec.space, str(path or "the default sweep"))
    from autotune.tracking.registry import check_alias, check_name

    check_name(spec.registry.name)
    check_alias(spec.registry.alias)
    return spec


def _values(key: str, value: Any, where: str) -> list[Any] | None:
    """The values a choice or a fixed key allows (None for a numeric distribution)."""
    if isinstance(value, Mapping):
        if len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
            raise UserError(
                f"{where}: space.{key}: a table holds one of {', '.join(DISTRIBUTIONS)}"
            )
        (dist, arg), *_ = value.items()
        if dist in {"choice", "grid"}:
            if not isinstance(arg, list) or not arg:
                raise UserError(f"{where}: space.{key}: {dist} needs a non-empty list")
            return list(arg)
        _check_bounds(key, dist, arg, where)
        return None
    if isinstance(value, list):
        if not value:
            raise UserError(f"{where}: space.{key}: an empty list allows nothing")
        return list(value)
    return [value]


def _check_bounds(key: str, dist: str, arg: Any, where: str) -> None:
    check, allowed = KNOWN_KEYS[key]
    ok_pair = isinstance(arg, list) and len(arg) == 2
    if not ok_pair or not all(check(v) for v in arg) or arg[0] >= arg[1]:
        raise UserError(
            f"{where}: space.{key}: {dist} needs [low, high] with low < high, each {allowed}"
        )
    if dist == "randint" and not all(isinstance(v, int) for v in arg):
        raise UserError(f"{where}: space.{key}: randint bounds are integers")
    if dist == "loguniform" and arg[0] <= 0:
        raise UserError(f"{where}: space.{key}: loguniform needs low > 0")


def check_space(space: Mapping[str, Any], where: str) -> None:
    """Refuse unknown keys and values outside what each key allows, naming the key."""
    for key, value in space.items():
        if key not in KNOWN_KEYS:
            raise UserError(
                f"{where}: unknown search-space key {key!r}; known: {', '.join(sorted(KNOWN_KEYS))}"
            )
        values = _values(key, value, where)
        if values is None:
            if key in RUN_KEYS and key != "seed":
                raise UserError(f"{where}: space.{key}: give a value or a list, not a range")
            continue
        check, allowed = KNOWN_KEYS[key]
        for v in values:
            if not check(v):
                raise UserError(f"{where}: space.{key}: {v!r} is not {allowed}")


def grid_size(space: Mapping[str, Any]) -> int:
    """How many trials each sample becomes (the product of the grid keys' lengths)."""
    n = 1
    for value in space.values():
        if isinstance(value, Mapping) and "grid" in value:
            n *= len(value["grid"])
    return n


def workload_subsets(space: Mapping[str, Any]) -> list[list[str]]:
    """Every workload subset the space may draw (empty: the bundled workloads)."""
    if "workloads" not in space:
        return []
    values = _values("workloads", space["workloads"], "space") or []
    return [[v] if isinstance(v, str) else list(v) for v in values]


def search_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """The space as Ray Tune's ``param_space`` (checked first with :func:`check_space`)."""
    from ray import tune

    out: dict[str, Any] = {}
    for key, value in space.items():
        if isinstance(value, Mapping):
            (dist, arg), *_ = value.items()
            if dist == "choice":
                out[key] = tune.choice(list(arg))
            elif dist == "grid":
                out[key] = tune.grid_search(list(arg))
            elif dist == "uniform":
                out[key] = tune.uniform(float(arg[0]), float(arg[1]))
            elif dist == "loguniform":
                out[key] = tune.loguniform(float(arg[0]), float(arg[1]))
            else:
                out[key] = tune.randint(int(arg[0]), int(arg[1]))
        elif isinstance(value, list):
            out[key] = tune.choice(list(value))
        else:
            out[key] = value
    return out
