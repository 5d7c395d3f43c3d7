"""The journal: the original value of every knob the tuner touches, on disk before the first write.

One JSON file (``Settings.journal``) holds one record per tuning session, so that two tuners on
one node (say, two jobs) do not overwrite each other's originals. Every update takes an exclusive
``flock`` on the journal's directory, reads the file, changes this session's record, writes a
temporary file, fsyncs it, renames it over the journal and fsyncs the directory: a crash at any
point leaves either the old or the new journal, never half of one.

A session record::

    {"id": "4242-ab12", "owner": {"pid": 4242, "start": 123456},
     "target": {"description": "...", "roots": [[pid, start], ...]},
     "entries": {key: {"kind": ..., "knob": ..., ...}},   # one per touched object
     "written": {knob: [value, ...]},                     # every value the session has written
     "origin": {kind: value}}                             # what a newly seen task would have had

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

from autotune.errors import NotPermitted, UserError
from autotune.fsutil import write_json_atomic
from autotune.target import start_time

JOURNAL_VERSION = 1

Session = dict[str, Any]
Entry = dict[str, Any]


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
        self.session: Session = {
            "id": session_id,
            "owner": {"pid": os.getpid(), "start": start_time(os.getpid())},
            "target": {"description": description, "roots": [list(r) for r in roots]},
            "created": time.time(),
            "entries": {},
            "written": {},
            "origin": {},
        }
        self._dirty = False
        self._stored = False

    @property
    def entries(self) -> dict[str, Entry]:
        entries: dict[str, Entry] = self.session["entries"]
        return entries

    def put(self, key: str, entry: Entry) -> None:
        """Add or replace an entry (kept in memory until :meth:`flush`)."""
        self.entries[key] = entry
        self._dirty = True

    def touch(self) -> None:
        """Mark the record changed (after editing an entry in place)."""
        self._dirty = True

    def wrote(self, knob: str, value: Any) -> None:
        """Note that ``value`` (JSON-encoded form) is about to be written to ``knob``."""
        values: list[Any] = self.session["written"].setdefault(knob, [])
        if value not in values:
            values.append(value)
            self._dirty = True

    def written(self, knob: str) -> list[Any]:
        values: list[Any] = self.session["written"].get(knob, [])
        return values

    def set_origin(self, kind: str, value: Any) -> None:
        """Record, once, what a task of the job had before we touched ``kind``."""
        if kind not in self.session["origin"]:
            self.session["origin"][kind] = value
            self._dirty = True

    def origin(self, kind: str) -> Any:
        return self.session["origin"].get(kind)

    def flush(self) -> None:
        """Write the record to disk if it changed (fsynced, atomic)."""
        if not self._dirty:
            return
        record = json.loads(json.dumps(self.session))  # a snapshot, not a live reference

        def change(sessions: dict[str, Session]) -> None:
            sessions[self.id] = record

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
