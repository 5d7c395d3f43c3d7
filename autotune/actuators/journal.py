"""The journal: the original value of every knob the tuner touches, on disk before the first write.

One JSON file (``Settings.journal``) holds one record per tuning session, so that two tuners on
one node (say, two jobs) do not overwrite each other's originals. Every update takes an exclusive
``flock`` on the journal's directory, reads the file, changes this session's record, writes a
temporary file, fsyncs it, renames it over the journal and fsyncs the directory: a crash at any
point leaves either the old or the new journal, never half of one.

A session record::

    {"id": "4242-ab12", "owner": {"pid": 4242, "start": 123456},
     "target": {"description": "...", "roots": [[pid, start], ...]},
     "entries": {key: {"kind": ..., "knob": ..., ...}},   # one per touched object (typed)
     "written": {knob: [value, ...]},                     # every value the session has written
     "origin": {kind: value}}                             # what a newly seen task would have had

Each entry is a :class:`JournalEntry` of its backend, told apart by ``kind`` (the registry maps a
kind to the backend that restores it). A record is read back as a :class:`Record`; the file's
format is the one autotune has written since journal version 1, so a journal left by a crashed
older tuner is restored by a newer ``autotune restore``.

Restore puts an object back only when its value now is one the session wrote: anything else was
set by someone else after us, and is theirs to keep (yield to people, even after a crash).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SerializeAsAny

from autotune.errors import NotPermitted, UserError
from autotune.fsutil import write_json_atomic
from autotune.target import start_time

JOURNAL_VERSION = 1

Session = dict[str, Any]  # a record as read from the file, before it is typed


class JournalEntry(BaseModel):
    """One touched object's original value; each backend's entry narrows ``kind`` to a literal."""

    kind: str
    knob: str | None = None

    @classmethod
    def kind_name(cls) -> str:
        """The ``kind`` this entry type is written with."""
        default = cls.model_fields["kind"].default
        return str(default)


class Owner(BaseModel):
    """The tuner process that wrote a record (its PID and start time)."""

    pid: int | None
    start: int | None


class TargetInfo(BaseModel):
    """What was tuned: a description for people, and the root processes as (pid, start time)."""

    description: str
    roots: list[tuple[int, int | None]]


class Record(BaseModel):
    """One tuning session's record: its entries and every value it wrote."""

    id: str
    owner: Owner
    target: TargetInfo
    created: float = 0.0
    entries: dict[str, SerializeAsAny[JournalEntry]] = Field(default_factory=dict)
    written: dict[str, list[Any]] = Field(default_factory=dict)
    origin: dict[str, Any] = Field(default_factory=dict)


@contextlib.contextmanager
def _locked_dir(directory: Path) -> Iterator[int]:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing drops the lock


def _parse(path: Path, text: str) -> dict[str, Session]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"journal {path} is not valid JSON ({e}); fix or remove it") from e
    if not isinstance(doc, dict) or doc.get("version") != JOURNAL_VERSION:
        raise UserError(
            f"journal {path} is not an autotune journal version {JOURNAL_VERSION}; fix or remove it"
        )
    sessions = doc.get("sessions")
    if not isinstance(sessions, dict) or not all(isinstance(s, dict) for s in sessions.values()):
        raise UserError(f"journal {path} has no valid 'sessions' object; fix or remove it")
    return sessions


def read(path: Path) -> dict[str, Session]:
    """The sessions recorded in a journal file; empty when there is no file.

    Raises:
        UserError: the file is unreadable or not a journal.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except PermissionError as e:
        raise NotPermitted(f"cannot read the journal {path}: permission denied") from e
    except OSError as e:
        raise UserError(f"cannot read the journal {path}: {e}") from e
    return _parse(path, text)


def update(path: Path, change: Callable[[dict[str, Session]], None]) -> None:
    """Apply ``change`` to the journal's sessions atomically; an empty journal is removed."""
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with _locked_dir(directory) as dir_fd:
            sessions = read(path)
            change(sessions)
            if not sessions:
                path.unlink(missing_ok=True)
            else:
                data = {"version": JOURNAL_VERSION, "sessions": sessions}
                write_json_atomic(path, data, perms=0o600, indent=1)
            os.fsync(dir_fd)
    except PermissionError as e:
        raise NotPermitted(
            f"cannot write the journal {path}: permission denied; run as root or set "
            "AUTOTUNE_JOURNAL to a writable path"
        ) from e
    except OSError as e:
        raise UserError(f"cannot write the journal {path}: {e}") from e


def owner_alive(session: Session) -> bool:
    """Whether the process that wrote ``session`` still runs (same PID and start time)."""
    owner = session.get("owner") or {}
    pid, start = owner.get("pid"), owner.get("start")
    return isinstance(pid, int) and start is not None and start_time(pid) == start


class Journal:
    """This session's record in the journal file; changes reach disk on :meth:`flush`.

    Args:
        path: the journal file (``Settings.journal``).
        session_id: unique among sessions on this node.
        description: what is tuned (for people reading the file).
        roots: the target's root processes as ``(pid, start time)``.
    """

    def __init__(
        self, path: Path, session_id: str, description: str, roots: list[tuple[int, int | None]]
    ) -> None:
        self.path = path
        self.id = session_id
        self.record = Record(
            id=session_id,
            owner=Owner(pid=os.getpid(), start=start_time(os.getpid())),
            target=TargetInfo(description=description, roots=list(roots)),
            created=time.time(),
        )
        self._dirty = False
        self._stored = False

    @property
    def entries(self) -> dict[str, JournalEntry]:
        return self.record.entries

    def put(self, key: str, entry: JournalEntry) -> None:
        """Add or replace an entry (kept in memory until :meth:`flush`)."""
        self.record.entries[key] = entry
        self._dirty = True

    def touch(self) -> None:
        """Mark the record changed (after editing an entry in place)."""
        self._dirty = True

    def wrote(self, knob: str, value: Any) -> None:
        """Note that ``value`` (JSON-encoded form) is about to be written to ``knob``."""
        values = self.record.written.setdefault(knob, [])
        if value not in values:
            values.append(value)
            self._dirty = True

    def written(self, knob: str) -> list[Any]:
        return self.record.written.get(knob, [])

    def set_origin(self, kind: str, value: Any) -> None:
        """Record, once, what a task of the job had before we touched ``kind``."""
        if kind not in self.record.origin:
            self.record.origin[kind] = value
            self._dirty = True

    def origin(self, kind: str) -> Any:
        return self.record.origin.get(kind)

    def flush(self) -> None:
        """Write the record to disk if it changed (fsynced, atomic)."""
        if not self._dirty:
            return
        snapshot = self.record.model_dump(mode="json")  # a copy, not a live reference

        def change(sessions: dict[str, Session]) -> None:
            sessions[self.id] = snapshot

        update(self.path, change)
        self._dirty = False
        self._stored = True

    def drop(self) -> None:
        """Remove this session's record (after a complete restore)."""
        if not self._stored:
            return

        def change(sessions: dict[str, Session]) -> None:
            sessions.pop(self.id, None)

        update(self.path, change)
        self._stored = False
