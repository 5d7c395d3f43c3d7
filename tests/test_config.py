"""The typed settings: sources, precedence, and one-line errors naming field, value and range."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune import config
from autotune.errors import UserError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "AUTOTUNE_INTERVAL_MS",
        "AUTOTUNE_TUNE_INTERVAL_MS",
        "AUTOTUNE_CONFIG",
        "AUTOTUNE_TRACKING_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = config.load()
    assert s.interval_ms == 250
    assert s.tune_interval_ms == 500
    assert s.tracking_uri == "sqlite:///runs/mlflow.db"
    assert s.cgroup_parent == "autotune"


def test_precedence_flag_over_env_over_file(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("autotune.toml").write_text("interval_ms = 500\ncgroup_parent = 'fromfile'\n")
    assert config.load().interval_ms == 500
    monkeypatch.setenv("AUTOTUNE_INTERVAL_MS", "1000")
    s = config.load()
    assert s.interval_ms == 1000
    assert s.cgroup_parent == "fromfile"
    assert config.load({"interval_ms": 100}).interval_ms == 100
    # A flag that was not given (None) does not hide the environment.
    assert config.load({"interval_ms": None}).interval_ms == 1000


def test_mlflow_env_sets_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert config.load().tracking_uri == "http://127.0.0.1:5000"


def test_explicit_file(tmp_path: Path) -> None:
    f = tmp_path / "other.toml"
    f.write_text("interval_ms = 2000\n")
    assert config.load(config_file=f).interval_ms == 2000


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("cli", "from command line"),
        ("env", "from AUTOTUNE_INTERVAL_MS"),
        ("file", "from autotune.toml"),
    ],
)
def test_out_of_range_names_field_value_source_and_range(
    source: str, needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = {}
    if source == "cli":
        cli = {"interval_ms": 10}
    elif source == "env":
        monkeypatch.setenv("AUTOTUNE_INTERVAL_MS", "10")
    else:
        Path("autotune.toml").write_text("interval_ms = 10\n")
    with pytest.raises(UserError) as e:
        config.load(cli)
    msg = str(e.value)
    assert "interval_ms" in msg
    assert "10" in msg
    assert needle in msg
    assert "50 to 5000" in msg
    assert "\n" not in msg


def test_unknown_key_in_file() -> None:
    Path("autotune.toml").write_text("intervall_ms = 100\n")
    with pytest.raises(UserError, match="unknown setting 'intervall_ms'"):
        config.load()


def test_malformed_file() -> None:
    Path("autotune.toml").write_text("interval_ms = = 3\n")
    with pytest.raises(UserError, match="not valid TOML"):
        config.load()


def test_missing_explicit_file() -> None:
    with pytest.raises(UserError, match="does not exist"):
        config.load(config_file="nope.toml")


def test_bad_pattern() -> None:
    with pytest.raises(UserError, match="cgroup_parent"):
        config.load({"cgroup_parent": "../escape"})


def test_wrong_type_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTUNE_INTERVAL_MS", "fast")
    with pytest.raises(UserError, match="interval_ms=fast"):
        config.load()


def test_the_collector_checks_the_same_interval_bounds() -> None:
    from autotune.telemetry import collector

    assert (collector.INTERVAL_MIN_S * 1000, collector.INTERVAL_MAX_S * 1000) == (
        config.INTERVAL_MIN_MS,
        config.INTERVAL_MAX_MS,
    )
