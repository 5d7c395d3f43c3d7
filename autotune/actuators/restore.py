"""Replay a journal: put every knob a session touched back as it was.

The same code runs when a session ends normally (on its own record) and in ``autotune restore``
(on the records a crashed run left). Each entry goes to the backend whose typed entry it is
(:data:`autotune.actuators.registry.RESTORERS`). Replaying twice is harmless: an object already
at its original value, gone, or changed by someone else after us is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autotune.actuators import journal, registry
from autotune.actuators.backend import Backend
from autotune.actuators.decisions import FAILED, Decision, DecisionLog
from autotune.actuators.journal import JournalEntry, Record, Session
from autotune.errors import UserError
from autotune.roles import Role


def replay_record(record: Record, unreadable: Mapping[str, str] | None = None) -> list[Decision]:
    """Restore everything one session touched; returns what was done (``failed`` = not done).

    Args:
        record: the session's typed record.
        unreadable: entries that could not be typed (kind → why): each is one ``failed`` line,
            so the session stays in the journal for a restore that can read them.
    """
    by_backend: dict[type[Backend], list[JournalEntry]] = {}
    missing = dict(unreadable or {})
    for e in record.entries.values():
        cls = registry.RESTORERS.get(e.kind)
        if cls is None:
            missing.setdefault(e.kind, f"no restorer for entries of kind {e.kind!r}")
            continue
        by_backend.setdefault(cls, []).append(e)
    out: list[Decision] = []
    for cls in reversed(registry.BACKENDS):
        entries = by_backend.get(cls)
        if not entries:
            continue
        try:
            out.extend(cls.restore(record, entries))
        except OSError as e:  # one kind failing must not stop the others being restored
            kind = cls.entry.kind_name()
            out.append(
                Decision(
                    kind, Role.OTHER, None, None, f"restoring {kind} entries failed: {e}", FAILED
                )
            )
    for kind, why in sorted(missing.items()):
        out.append(Decision(kind, Role.OTHER, None, None, why, FAILED))
    return out


def replay_session(session: Session) -> list[Decision]:
    """:func:`replay_record` for a record as read from the journal file.

    Raises:
        UserError: the record is malformed (not one of its entries: those are reported).
    """
    parsed = registry.parse_record(session)
    return replay_record(parsed.record, parsed.unreadable)


@dataclass
class Report:
    """What ``autotune restore`` did with a journal."""

    restored: list[str] = field(default_factory=list)  # session ids replayed completely
    incomplete: list[str] = field(default_factory=list)  # replayed, something failed
    running: list[str] = field(default_factory=list)  # skipped: their tuner still runs
    decisions: list[Decision] = field(default_factory=list)


def restore_journal(path: Path, log: DecisionLog, force: bool = False) -> Report:
    """Replay every session in the journal at ``path`` whose tuner is gone (all with ``force``).

    Sessions replayed completely are removed from the journal; the file goes with the last one.
    """
    report = Report()
    for sid, session in journal.read(path).items():
        if journal.owner_alive(session) and not force:
            report.running.append(sid)
            continue
        try:
            decisions = replay_session(session)
        except UserError as e:
            decisions = [Decision("journal", Role.OTHER, None, None, str(e), FAILED)]
        for d in decisions:
            log.record(d)
        report.decisions.extend(decisions)
        if any(d.event == FAILED for d in decisions):
            report.incomplete.append(sid)
            continue
        report.restored.append(sid)

        def drop(sessions: dict[str, Session], sid: str = sid) -> None:
            sessions.pop(sid, None)

        journal.update(path, drop)
    return report
