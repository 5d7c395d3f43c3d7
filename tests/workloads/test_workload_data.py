"""make_data: the same seed makes the same bytes; a finished dataset is not made again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from autotune.errors import UserError
from workloads import make_data


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    make_data.make(tmp_path / "a", "tiny", seed=1)
    make_data.make(tmp_path / "b", "tiny", seed=1)
    make_data.make(tmp_path / "c", "tiny", seed=2, only=("shards",))
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert a == b
    assert any(k.startswith("images/") for k in a) and "tokens/tokens.bin" in a
    c = _digest(tmp_path / "c")
    assert c["shards/shard-000000.tar"] != a["shards/shard-000000.tar"]
    assert not list(tmp_path.rglob("*.tmp")), "a manifest was left half-written"


def test_a_finished_dataset_is_not_made_again(tmp_path: Path) -> None:
    make_data.make(tmp_path, "tiny", only=("tokens",))
    tokens = tmp_path / "tokens" / "tokens.bin"
    first = tokens.stat().st_mtime_ns
    make_data.make(tmp_path, "tiny", only=("tokens",))
    assert tokens.stat().st_mtime_ns == first
    make_data.make(tmp_path, "tiny", seed=5, only=("tokens",))  # another seed: made again
    assert tokens.stat().st_mtime_ns != first
    assert (make_data.manifest(tmp_path, "tokens") or {})["seed"] == 5


@pytest.mark.parametrize(
    ("size", "only", "message"),
    [("huge", ("images",), "unknown data size"), ("tiny", ("videos",), "unknown dataset")],
)
def test_bad_requests_are_user_errors(
    tmp_path: Path, size: str, only: tuple[str, ...], message: str
) -> None:
    with pytest.raises(UserError, match=message):
        make_data.make(tmp_path, size, only=only)
    assert not any(tmp_path.iterdir()), "nothing is made for a bad request"


def test_cli_exit_status(tmp_path: Path) -> None:
    assert make_data.main([str(tmp_path), "--size", "tiny", "--only", "shards"]) == 0
    assert make_data.main([str(tmp_path), "--only", "videos"]) == 2
