"""The decision log: what a long-running tuner keeps, and the tags a shared file needs."""

from __future__ import annotations

from pathlib import Path

from autotune.actuators import Decision, DecisionLog
from autotune.roles import Role


def _decision(n: int) -> Decision:
    return Decision("weight.trainer", Role.TRAINER, 1.0, 2.0, f"test {n}", "set")


def test_a_log_that_does_not_keep_holds_nothing_but_writes_everything(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, console=False, keep=False, tags={"pid": 4242}) as log:
        seen: list[Decision] = []
        log.add_listener(seen.append)
        for n in range(3):
            log.record(_decision(n))
        assert log.decisions == []  # a tuner running for days holds none of them
        assert len(seen) == 3  # listeners (the service's state) still get each one
    lines = DecisionLog.read(path)
    assert [d["reason"] for d in lines] == ["test 0", "test 1", "test 2"]
    assert all(d["pid"] == 4242 and d["knob"] == "weight.trainer" for d in lines)


def test_by_default_a_log_keeps_its_decisions_untagged(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with DecisionLog(path, console=False) as log:
        log.record(_decision(0))
        assert [d.reason for d in log.decisions] == ["test 0"]
    (line,) = DecisionLog.read(path)
    assert "pid" not in line
