"""The Model Registry: a training run's policy registered, promoted by alias, resolved by
``models:/NAME@ALIAS`` and ``models:/NAME/VERSION``, and a clear line for what does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.errors import UserError
from autotune.tracking import registry, resolve_model, tracked_run
from autotune.tracking.models import resolve_model_info


def _trained(runs: Path, uri: str, tmp_path: Path, content: bytes) -> str:
    folder = tmp_path / f"policy-{content.decode()}"
    folder.mkdir()
    (folder / "weights.npz").write_bytes(content)
    (folder / "policy.json").write_text("{}")
    with tracked_run("train", tracking_uri=uri, runs_dir=runs) as run:
        run.log_policy(folder)
    return run.id


def test_register_promote_and_resolve(runs: Path, sqlite_uri: str, tmp_path: Path) -> None:
    first = _trained(runs, sqlite_uri, tmp_path, b"one")
    second = _trained(runs, sqlite_uri, tmp_path, b"two")
    v1 = registry.register(first, sqlite_uri)
    assert (v1.name, v1.version, v1.alias) == ("autotune-policy", "1", "champion")
    got = resolve_model("models:/autotune-policy@champion", sqlite_uri, runs)
    assert (got / "weights.npz").read_bytes() == b"one"
    # A second registration takes the alias: promotion is an alias change.
    v2 = registry.register(second, sqlite_uri)
    info = resolve_model_info("models:/autotune-policy@champion", sqlite_uri, runs)
    assert (info.path / "weights.npz").read_bytes() == b"two"
    assert info.tags == {
        "autotune.model_name": "autotune-policy",
        "autotune.model_version": v2.version,
        "autotune.model_uri": "models:/autotune-policy/2",
        "autotune.model_run_id": second,
        "autotune.model_alias": "champion",
    }
    # A version number still names the first one.
    old = resolve_model("models:/autotune-policy/1", sqlite_uri, runs)
    assert (old / "weights.npz").read_bytes() == b"one"
    # Another alias, another name.
    registry.register(first, sqlite_uri, name="other", alias="staging")
    assert registry.lookup("models:/other@staging", sqlite_uri).run_id == first


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("models:/autotune-policy@nope", "has no alias 'nope'; it has @champion (version 1)"),
        ("models:/missing@champion", "no registered model 'missing'"),
        ("models:/autotune-policy/7", "has no version 7"),
        ("models:/autotune-policy", "a registry URI is models:/NAME@ALIAS"),
    ],
)
def test_what_does_not_exist_is_one_line(
    runs: Path, sqlite_uri: str, tmp_path: Path, given: str, message: str
) -> None:
    registry.register(_trained(runs, sqlite_uri, tmp_path, b"x"), sqlite_uri)
    with pytest.raises(UserError) as e:
        resolve_model(given, sqlite_uri, runs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_registering_a_run_without_a_policy(runs: Path, sqlite_uri: str) -> None:
    with tracked_run("tune", tracking_uri=sqlite_uri, runs_dir=runs) as run:
        pass
    with pytest.raises(UserError, match="has no policy/ artifact: nothing to register"):
        registry.register(run.id, sqlite_uri)
    with pytest.raises(UserError, match="alias 'v2' is not allowed"):
        registry.register(run.id, sqlite_uri, alias="v2")
