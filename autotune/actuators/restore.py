"""Replay a journal: put every knob a session touched back as it was.

The same code runs when a session ends normally (on its own record) and in ``autotune restore``
(on the records a crashed run left). Replaying twice is harmless: an object already at its
original value, gone, or changed by someone else after us is left alone.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autotune.actuators import journal
from autotune.actuators.decisions import FAILED, Decision, DecisionLog
from autotune.actuators.journal import Session
from autotune.roles import Role

# Entry kind → the function that replays a session's entries of that kind ("module:attr").
# A backend with its own kind (the sched_ext weights map, say) adds one line here.
REPLAY: dict[str, str] = {
    "prefetch": "autotune.actuators.prefetch:replay",
    "readahead": "autotune.actuators.readahead:replay",
    "affinity": "autotune.actuators.affinity:replay",
    "nice": "autotune.actuators.weights:replay_nice",
    "cgroups": "autotune.actuators.weights:replay_cgroups",
    "sched_ext": "autotune.actuators.weights_scx:replay",
}


def _replayer(kind: str) -> Callable[[Session], list[Decision]]:
    module, _, attr = REPLAY[kind].partition(":")
    fn: Callable[[Session], list[Decision]] = getattr(importlib.import_module(module), attr)
    return fn


def replay_session(session: Session) -> list[Decision]:
    """Restore everything one session touched; returns what was done (``failed`` = not done)."""
    kinds = {e.get("kind") for e in session.get("entries", {}).values()}
    out: list[Decision] = []
    for kind in REPLAY:
        if kind in kinds:
            try:
                out.extend(_replayer(kind)(session))
            except OSError as e:  # one kind failing must not stop the others being restored
                why = f"restoring {kind} entries failed: {e}"
                out.append(Decision(kind, Role.OTHER, None, None, why, FAILED))
    for kind in sorted(str(k) for k in kinds - set(REPLAY)):
        out.append(
            Decision(
                kind, Role.OTHER, None, None, f"no restorer for entries of kind {kind!r}", FAILED
            )
        )
    return out


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
        decisions = replay_session(session)
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
