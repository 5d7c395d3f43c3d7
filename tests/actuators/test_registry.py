"""The backend registry: one table for choosing, building and restoring; typed journal entries
that read the journals autotune wrote before them.

``journals/v1-39bffd4.json`` holds records written by the code before the registry (commit
39bffd4): the cgroup v1 and nice sessions are real, captured from its tuner (tests/actuators/
tuner.py) killed with SIGKILL on this machine; the sched_ext and prefetch entries are written in
the shapes its ``weights_scx`` and ``prefetch`` modules wrote (neither a sched_ext kernel nor an
integrating job runs here to capture them from).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotune.actuators import registry
from autotune.actuators.decisions import FAILED, DecisionLog
from autotune.actuators.journal import Journal, Owner
from autotune.actuators.readahead import ReadaheadEntry
from autotune.actuators.restore import restore_journal
from autotune.actuators.weights_cgroup import CgroupsEntry
from autotune.errors import UserError
from autotune.knobs import KNOBS, Family, of_family
from autotune.system import cgroups

OLD = Path(__file__).with_name("journals") / "v1-39bffd4.json"
DOC = Path(__file__).resolve().parents[2] / "docs" / "backends.md"


def _old_sessions() -> dict[str, dict[str, object]]:
    sessions: dict[str, dict[str, object]] = json.loads(OLD.read_text())["sessions"]
    return sessions


def test_every_knob_has_a_family_and_every_family_its_backends() -> None:
    assert {k.family for k in KNOBS} == set(Family)
    for family in Family:
        backends = registry.of(family)
        assert backends, family
        for b in backends:
            assert b.knobs == tuple(k.name for k in of_family(family))
    # Each entry kind belongs to one entry type (cgroup v1 and v2 share theirs, and its restore).
    for b in registry.BACKENDS:
        assert registry.RESTORERS[b.entry.kind_name()].entry is b.entry


def test_records_of_the_previous_version_read_back_typed_and_unchanged() -> None:
    kinds: set[str] = set()
    for raw in _old_sessions().values():
        parsed = registry.parse_record(raw)
        assert parsed.unreadable == {}
        for e in parsed.record.entries.values():
            assert type(e) is registry.RESTORERS[e.kind].entry
            kinds.add(e.kind)
        # Written back, a record is what the old code wrote: the format did not move.
        assert parsed.record.model_dump(mode="json") == raw
    assert kinds == set(registry.RESTORERS)


def test_a_cgroups_entry_from_before_the_jobs_cgroup_reads() -> None:
    raw = next(s for s in _old_sessions().values() if "cgroups" in s["entries"])  # type: ignore[operator]
    entry = dict(raw["entries"]["cgroups"])  # type: ignore[index]
    del entry["joint"]
    parsed = registry.parse_record({**raw, "entries": {"cgroups": entry}})
    cg = parsed.record.entries["cgroups"]
    assert isinstance(cg, CgroupsEntry) and cg.joint is None


def test_an_unreadable_entry_is_one_failed_line_and_keeps_its_session(tmp_path: Path) -> None:
    path = tmp_path / "crashed.json"
    j = Journal(path, "dead", "a job", [])
    j.record.owner = Owner(pid=0, start=None)  # no such tuner: it crashed
    j.put("readahead:loop9", ReadaheadEntry(device="loop9", path="/dev/null", original=128))
    j.flush()
    doc = json.loads(path.read_text())
    del doc["sessions"]["dead"]["entries"]["readahead:loop9"]["original"]  # damaged on disk
    path.write_text(json.dumps(doc))
    report = restore_journal(path, DecisionLog(console=False))
    assert report.incomplete == ["dead"]
    (d,) = report.decisions
    assert d.event == FAILED and "'readahead:loop9' is malformed (original" in d.reason
    assert path.exists()  # kept for a restore that can read it
    doc["sessions"]["dead"].pop("target")  # a record without its target: one line too
    path.write_text(json.dumps(doc))
    (d,) = restore_journal(path, DecisionLog(console=False)).decisions
    assert d.event == FAILED and "journal record 'dead' is malformed (target" in d.reason
    path.unlink()


def test_choose_takes_the_best_available_or_the_one_asked_for() -> None:
    chosen = registry.choices()
    assert [c.family for c in chosen] == list(Family)
    weights = chosen[0]
    best = next(b for b in registry.of(Family.WEIGHTS) if b.available(cgroups.mounts()).ok)
    assert weights.backend == best.name
    _, nice = registry.choose(Family.WEIGHTS, prefer="nice")
    assert nice.backend == "nice" and nice.reason.startswith("asked for")
    _, other = registry.choose(Family.WEIGHTS, exclude=(weights.backend,))
    assert other.backend != weights.backend
    with pytest.raises(UserError, match="unknown weights backend 'bogus'; one of sched_ext"):
        registry.choose(Family.WEIGHTS, prefer="bogus")


def test_the_docs_table_is_the_registry() -> None:
    rows = [
        [c.strip().replace("`", "") for c in line.strip("|").split("|")]
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| family", "| method"))
    ]
    table = {r[0]: r[1:] for r in rows if r[0] in set(Family)}
    assert list(table) == list(Family)
    for family, (knobs, backends, kinds) in table.items():
        of = registry.of(Family(family))
        assert knobs == ", ".join(k.name for k in of_family(Family(family)))
        assert backends == ", ".join(b.name for b in of)
        assert kinds == ", ".join(b.entry.kind_name() for b in of)
