"""resolve_model: `--model RUN_ID | PATH` to a local policy folder, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.errors import UserError
from autotune.tracking import resolve_model, tracked_run


def _policy(root: Path) -> Path:
    folder = root / "exported"
    folder.mkdir()
    (folder / "weights.npz").write_bytes(b"weights")
    (folder / "metadata.json").write_text('{"schema_version": 1}')
    return folder


def test_run_id_downloads_the_policy_once(runs: Path, sqlite_uri: str, tmp_path: Path) -> None:
    with tracked_run("train", tracking_uri=sqlite_uri, runs_dir=runs) as run:
        run.log_policy(_policy(tmp_path))
    got = resolve_model(run.id, sqlite_uri, runs)
    assert got == runs / "models" / run.id / "policy"
    assert sorted(p.name for p in got.iterdir()) == ["metadata.json", "weights.npz"]
    assert (got / "weights.npz").read_bytes() == b"weights"
    assert resolve_model(f"runs:/{run.id}/policy", sqlite_uri, runs) == got
    # The local id still names the run after upload (through the spool's index).
    assert resolve_model(run.local_id, sqlite_uri, runs) == got


def test_a_path_is_taken_as_it_is(tmp_path: Path, sqlite_uri: str) -> None:
    folder = _policy(tmp_path)
    assert resolve_model(str(folder), sqlite_uri) == folder


def test_a_run_still_in_the_spool(runs: Path, dead_uri: str, tmp_path: Path) -> None:
    with tracked_run("train", tracking_uri=dead_uri, runs_dir=runs, notify=lambda _: None) as r:
        r.log_policy(_policy(tmp_path))
    got = resolve_model(r.id, dead_uri, runs)
    assert (got / "weights.npz").read_bytes() == b"weights"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0" * 32, "no run 00000000000000000000000000000000"),
        ("not-a-run", "neither a path nor an MLflow run id"),
        ("local-0123456789abcdef", "no run local-0123456789abcdef"),
    ],
)
def test_unknown_models(runs: Path, sqlite_uri: str, given: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        resolve_model(given, sqlite_uri, runs)


def test_a_run_without_a_policy(runs: Path, sqlite_uri: str) -> None:
    with tracked_run("tune", tracking_uri=sqlite_uri, runs_dir=runs) as run:
        pass
    with pytest.raises(UserError, match=r"\(kind tune\) has no policy/ artifact"):
        resolve_model(run.id, sqlite_uri, runs)


def test_a_store_that_does_not_answer(runs: Path, dead_uri: str) -> None:
    with pytest.raises(UserError, match="does not answer"):
        resolve_model("a" * 32, dead_uri, runs)
