"""The one typed configuration model.

Values come from, highest first: command-line flags, ``AUTOTUNE_*`` environment variables
(``MLFLOW_TRACKING_URI`` too, for the tracking URI), the file ``autotune.toml`` (or the file named
by ``--config`` / ``AUTOTUNE_CONFIG``), and the defaults below. A bad value is a
:class:`~autotune.errors.UserError` naming the field, the value, where it came from and what is
allowed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from autotune.errors import UserError
from autotune.tracking.schema import DEFAULT_TRACKING_URI

DEFAULT_CONFIG_FILE = Path("autotune.toml")
ENV_PREFIX = "AUTOTUNE_"
# Every recording or control interval (the telemetry collector checks the same bounds).
INTERVAL_MIN_MS, INTERVAL_MAX_MS = 50, 5000
INTERVAL_RANGE = f"{INTERVAL_MIN_MS} to {INTERVAL_MAX_MS}"


def _default_journal() -> Path:
    """`/var/lib/autotune/journal.json` as root, else `runs/journal.json`."""
    # Root writes where `autotune restore` finds it after a crash; others write under runs/.
    if os.geteuid() == 0:
        return Path("/var/lib/autotune/journal.json")
    return Path("runs/journal.json")


def _default_state_dir() -> Path:
    # The service's lock and state file (`autotune status` reads it), beside the journal.
    if os.geteuid() == 0:
        return Path("/var/lib/autotune")
    return Path("runs")


def _default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


# The docs' settings table shows a computed default by its factory's docstring.
_default_tracking_uri.__doc__ = f"`MLFLOW_TRACKING_URI`, else `{DEFAULT_TRACKING_URI}`"


class Settings(BaseSettings):
    """autotune's settings. Each field is also ``AUTOTUNE_<FIELD>`` and a key in autotune.toml."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
    )

    interval_ms: int = Field(
        250,
        ge=INTERVAL_MIN_MS,
        le=INTERVAL_MAX_MS,
        description=f"recording interval in milliseconds ({INTERVAL_RANGE})",
    )
    tune_interval_ms: int = Field(
        500,
        ge=INTERVAL_MIN_MS,
        le=INTERVAL_MAX_MS,
        description=f"autotune tune's control interval in milliseconds ({INTERVAL_RANGE})",
    )
    record_rt_priority: int = Field(
        1,
        ge=0,
        le=99,
        description="real-time (SCHED_FIFO) priority of autotune record's sampling thread, so "
        "that rows stay on time beside a job with more runnable threads than CPUs; 0: the "
        "normal scheduler (1 to 99 need root or CAP_SYS_NICE; without them, 0)",
    )
    tune_nice: int = Field(
        -10,
        ge=-20,
        le=19,
        description="nice value of autotune tune's own threads (the BPF compile, the loop) from "
        "the moment a job it starts has started, which keeps its nice value: beside a CPU-bound "
        "neighbour the tuner's start takes seconds of the job's time at default knobs; 0: no "
        "change (below 0 needs root or CAP_SYS_NICE; without them, unchanged)",
    )
    runs_dir: Path = Field(Path("runs"), description="where recordings and local state live")
    tracking_uri: str = Field(
        default_factory=_default_tracking_uri, description="MLflow tracking URI", min_length=1
    )
    tracking_live_upload_s: float = Field(
        60.0,
        ge=0.0,
        le=86400.0,
        description="while autotune tune runs, its MLflow run is uploaded this often, the first "
        "time after as long: that upload loads the MLflow client (1.3 s of CPU), which cost the "
        "cnn job 5 % beside it at 10 s; a job shorter than this never has it beside it. 0: only "
        "once the session has ended (0 to 86400)",
    )
    journal: Path = Field(
        default_factory=_default_journal, description="journal of original knob values"
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="where the service keeps its lock, state file and decision logs",
    )
    cgroup_parent: str = Field(
        "autotune",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="name of the cgroup the tuner creates its role cgroups under",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="log verbosity"
    )
    # The online tuner's guard (autotune/daemon/guard.py), in seconds.
    guard_warmup_s: float = Field(
        5.0,
        ge=0.0,
        le=3600.0,
        description="the most seconds at default knobs before tuning (0 to 3600)",
    )
    guard_warmup_min_s: float = Field(
        1.0,
        ge=0.0,
        le=3600.0,
        description="the fewest seconds at default knobs before tuning; the warm-up ends between "
        "the two once the default rate is known within guard_fallback_margin (0 to 3600)",
    )
    guard_warmup_defer: bool = Field(
        True,
        description="end the warm-up once guard_warmup_min_s and a canary window have passed, "
        "and run the rest the noise asks for at default knobs after guard_fallback_s of tuning "
        "(false: the whole warm-up first; see docs/online-tuning.md)",
    )
    guard_warmup_proc: bool = Field(
        True,
        description="run the warm-up's first intervals on the trainer's CPU time from /proc "
        "while the BPF telemetry compiles (false: the warm-up starts once the telemetry is up)",
    )
    guard_keep_on_restart: bool = Field(
        True,
        description="when the job starts reporting its own progress (autotune.client), keep "
        "the weights tuned during its start-up (those from before a change still too young "
        "to judge; the rest back to default) and run the new "
        "unit's warm-up at default knobs after guard_fallback_s of tuning (false: default knobs "
        "and the warm-up at once)",
    )
    guard_start_weight: float = Field(
        8.0,
        ge=1.0,
        le=8.0,
        description="weight of a job's roles from its first instruction when autotune tune "
        "starts the job and other tasks take guard_min_contention of the CPU time the job and "
        "the tuner leave them as it starts (1, 2, 4 or 8): its start-up does not run at "
        "default knobs beside them while the telemetry compiles; the warm-up at default "
        "knobs is owed, run after guard_fallback_s of tuning; 1: default knobs until the "
        "policy's first change",
    )
    guard_fast_retreat: bool = Field(
        True,
        description="a move of the policy back toward the default knobs goes in at once and "
        "whole, without guard_max_rungs or the dwell, even while a change is judged (false: "
        "rate-limited as any change)",
    )
    guard_fast_return: bool = Field(
        True,
        description="a move of the policy to a knob level that was part of a change whose canary "
        "passed goes in at once, as a retreat does, until a rollback of that level or a "
        "fallback (false: rate-limited and judged again each time)",
    )
    guard_max_rungs: int = Field(
        3,
        ge=1,
        le=16,
        description="the most ladder rungs a knob moves in one change (3: weights 1x to 8x in "
        "one, judged by one canary; 1 to 16)",
    )
    guard_one_family: bool = Field(
        False,
        description="change the knobs of one family at a time (weights, then cores, read-ahead, "
        "prefetch), each judged by its own canary, so that a loss in one is not hidden by a gain "
        "in another",
    )
    guard_probe_families: bool = Field(
        False,
        description="after a change of several knob families passes its canary, take each but "
        "the weights back to default alone for a canary window, and keep it out if the job is "
        "clearly faster without it",
    )
    guard_startup_hold_s: float = Field(
        0.0,
        ge=0.0,
        le=600.0,
        description="seconds from the start in which, until the job reports its own progress "
        "through autotune.client, only the weights move: no core split, read-ahead or prefetch "
        "change beside the job's imports and worker start, judged by CPU time and undone when "
        "its samples begin (0: off; 0 to 600)",
    )
    guard_dwell_s: float = Field(
        2.0, ge=0.0, le=600.0, description="seconds between two changes of a knob (0 to 600)"
    )
    guard_canary_s: float = Field(
        2.0,
        gt=0.0,
        le=600.0,
        description="seconds a change is watched before it is judged (0 to 600)",
    )
    guard_threshold: float = Field(
        0.10, gt=0.0, lt=1.0, description="fall in progress that reverts a change (0 to 1)"
    )
    guard_early_fall: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        description="fall in progress that reverts a change after half of guard_canary_s, "
        "before the rest of it (clear of the noise, as any; 0: wait for the whole window)",
    )
    readahead_open_files: bool = Field(
        True,
        description="a new read-ahead reaches the files the job holds open too (posix_fadvise "
        "through pidfd_getfd), not only those it opens afterwards",
    )
    guard_steady_baseline: bool = Field(
        True,
        description="judge a change against the rates of the setting in effect only (not an "
        "interval that mixes it with the one before, nor a rolled-back change's)",
    )
    guard_holdoff_s: float = Field(
        30.0, ge=0.0, le=3600.0, description="seconds a reverted setting is refused (0 to 3600)"
    )
    guard_fallback_s: float = Field(
        30.0, gt=0.0, le=3600.0, description="window compared with default progress (0 to 3600)"
    )
    guard_fallback_margin: float = Field(
        0.05, ge=0.0, lt=1.0, description="how far below default before falling back (0 to 1)"
    )
    guard_min_contention: float = Field(
        0.5,
        ge=0.0,
        le=64.0,  # above what any node wants: a test (or a person) can turn weights off for sure
        description="share of the CPUs other tasks must want before a weight rises above 1x "
        "while the job reads guard_io_mbps or more (0 to 64)",
    )
    guard_io_mbps: float = Field(
        100.0,
        ge=0.0,
        le=1e6,
        description="MB/s of reads from which a quiet node gives the job no extra weight",
    )

    # The online adapter (autotune/daemon/adapt.py): `autotune tune --adapt`.
    adapt: bool = Field(
        False,
        description="autotune tune learns from the live job around the policy's settings "
        "(a bandit, every change still guarded)",
    )
    adapt_hold_s: float = Field(
        4.0,
        gt=0.0,
        le=600.0,
        description="seconds the adapter keeps a setting at least, never under the guard's "
        "canary window (0 to 600)",
    )
    adapt_halflife_s: float = Field(
        30.0,
        gt=0.0,
        le=3600.0,
        description="seconds after which the adapter weighs a rate half (0 to 3600)",
    )
    adapt_margin: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="gain over the current setting the adapter needs to move (0 to 1)",
    )

    @field_validator("runs_dir", "journal", "state_dir")
    @classmethod
    def _not_empty(cls, v: Path) -> Path:
        if str(v) in {"", "."}:
            raise ValueError("must name a path")
        return v

    @field_validator("guard_start_weight")
    @classmethod
    def _a_weight_rung(cls, v: float) -> float:
        from autotune.knobs.table import by_name

        rungs = [x for x in by_name("weight.trainer").ladder if x >= 1.0]
        if v not in rungs:
            listed = ", ".join(f"{x:g}" for x in rungs)
            raise ValueError(f"must be one of {listed} (a rung of the weights' ladder)")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags beat the environment, which beats the file (model_config's toml_file).
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _settings_class(path: Path | None) -> type[Settings]:
    """Settings reading ``path``: pydantic-settings takes its file from the class's config."""
    if path is None:
        return Settings
    return type(
        "Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}}
    )


def _source_of(field: str, cli: dict[str, Any], file: Path | None) -> str:
    if field in cli:
        return "command line"
    env = ENV_PREFIX + field.upper()
    if env in os.environ:
        return env
    if field == "tracking_uri" and "MLFLOW_TRACKING_URI" in os.environ:
        return "MLFLOW_TRACKING_URI"
    if file is not None:
        return str(file)
    return "default"


def _allowed(field: str) -> str:
    info = Settings.model_fields.get(field)
    if info is None:
        return f"known fields: {', '.join(Settings.model_fields)}"
    return info.description or ""


def _explain(err: ValidationError, cli: dict[str, Any], file: Path | None) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "?"
    if first["type"] == "extra_forbidden":
        return f"unknown setting {field!r} (from {_source_of(field, cli, file)}); {_allowed(field)}"
    value = first.get("input")
    msg = first["msg"].removeprefix("Value error, ")
    return (
        f"bad setting {field}={value} (from {_source_of(field, cli, file)}): {msg}; "
        f"allowed: {_allowed(field)}"
    )


def load(cli: dict[str, Any] | None = None, config_file: Path | str | None = None) -> Settings:
    """Build the settings from flags, environment, file and defaults.

    Args:
        cli: values given on the command line; ``None`` entries are ignored (flag not given).
        config_file: a TOML file to read; default ``AUTOTUNE_CONFIG`` or ``./autotune.toml``
            when it exists.

    Raises:
        UserError: an unreadable or malformed file, or a value out of range.
    """
    given = {k: v for k, v in (cli or {}).items() if v is not None}
    explicit = config_file or os.environ.get("AUTOTUNE_CONFIG")
    path: Path | None = Path(explicit) if explicit else None
    if path is not None and not path.is_file():
        raise UserError(f"config file {path} does not exist")
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        try:
            tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"config file {path} cannot be read: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise UserError(f"config file {path} is not valid TOML: {e}") from e
    try:
        return _settings_class(path)(**given)
    except ValidationError as e:
        raise UserError(_explain(e, given, path)) from e
