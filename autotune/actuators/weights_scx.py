"""CPU weight per role through our sched_ext scheduler: one map update, no cgroup moves.

The session takes two *groups* (slots of the scheduler's ``weights`` map) for its roles, puts
each process of a role in the ``roles`` map (tgid → group, followed as processes come and go)
and writes a role's weight as ``multiplier × 100`` (sched_ext's scale: 100 is nice 0). Every
thread of those processes then runs with that weight; tasks outside the maps keep their nice
weight. Like every backend it journals first (the pin folder, its groups and every process it
put in a group), reads back what it wrote, and yields a group that someone else rewrote.

If sched_ext ejects the scheduler (its watchdog, say), the next :meth:`ScxWeights.set` or
:meth:`ScxWeights.follow` notices, logs why, and carries on through the next weights backend (the
registry hands it a ``fallback`` that builds one: cgroups, or nice) with the same multipliers.
Restore (:meth:`ScxWeights.restore`, also run by ``autotune restore`` after a crash) clears the
session's groups and members and, when no other session is left in the maps, unloads the
scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from autotune.actuators.backend import Availability, Backend, Context, Notice, Stuck
from autotune.actuators.decisions import FAILED, LEFT, RESTORE, Decision
from autotune.actuators.journal import Journal, JournalEntry, Record
from autotune.knobs import Family, by_name
from autotune.knobs.readback import weight_values
from autotune.roles import Role
from autotune.scx import maps as scx_maps
from autotune.scx import scheduler as scx
from autotune.system import cgroups
from autotune.target import Members, start_time

ROLES = (Role.TRAINER, Role.LOADER)
# Builds the backend that carries on when the scheduler stops (the registry's next choice).
Fallback = Callable[[], Backend]

log = logging.getLogger("autotune.actuators")


def weight_for(factor: float) -> int:
    """A multiplier of the default weight on sched_ext's scale (100 = nice 0)."""
    return min(
        max(round(factor * scx_maps.WEIGHT_DEFAULT), scx_maps.WEIGHT_MIN), scx_maps.WEIGHT_MAX
    )


def _pids(role: Role, members: Members) -> tuple[int, ...]:
    return members.trainer_pids if role is Role.TRAINER else members.loader_pids


class ScxEntry(JournalEntry):
    """The groups a session took in the scheduler's maps, and every process it put in them.

    Attributes:
        pin_dir: where the maps are pinned.
        groups: role → group.
        members: tgid → (start time, group).
    """

    kind: Literal["sched_ext"] = "sched_ext"
    pin_dir: str
    groups: dict[str, int]
    members: dict[str, tuple[int | None, int]] = Field(default_factory=dict)


class ScxWeights(Backend):
    """``weight.<role>`` as the weight of the role's group in our scheduler's ``weights`` map.

    Args:
        journal: the session's journal.
        ctx: the session's context (its cgroup layout, for reading weights not in the maps).
        pin_dir: where the scheduler's maps are pinned.
        status: how to tell whether the scheduler runs (tests on kernels without sched_ext
            pass a double here; everything else they exercise is real).
        fallback: builds the backend to carry on with if the scheduler stops; without one, the
            weights are disabled then.

    Raises:
        Stuck: our scheduler is not running, or its maps cannot be opened.
    """

    name = "sched_ext"
    family = Family.WEIGHTS
    entry = ScxEntry

    def __init__(
        self,
        journal: Journal,
        ctx: Context,
        pin_dir: Path = scx.PIN_DIR,
        status: Callable[[Path], scx.Status] = scx.status,
        fallback: Fallback | None = None,
    ) -> None:
        super().__init__(journal, ctx)
        self.pin_dir = pin_dir
        self.status = status
        self.make_fallback = fallback
        st = status(pin_dir)
        if not st.loaded:
            raise Stuck(st.reason)
        try:
            self.maps = scx_maps.SchedulerMaps(pin_dir)
        except OSError as e:
            raise Stuck(str(e)) from e
        self.journalled: ScxEntry | None = None
        self.groups: dict[Role, int] = {}
        self.factor: dict[Role, float] = {}
        self.weight: dict[Role, int] = {}
        self.placed: dict[int, int | None] = {}  # tgid → start time, for a reused PID
        self.yielded: set[Role] = set()
        self.fallback: Backend | None = None

    @classmethod
    def available(cls, mounts: cgroups.CgroupMounts) -> Availability:
        st = scx.status(scx.PIN_DIR)
        if not st.loaded:
            return Availability(False, st.reason)
        return Availability(True, "our sched_ext scheduler is loaded")

    # --- writing ----------------------------------------------------------------------------

    def _begin(self) -> None:
        """Take two free groups, journal them, and give both the default weight."""
        try:
            free = self.maps.free_groups(len(ROLES))
        except OSError as e:
            raise Stuck(str(e)) from e
        self.groups = dict(zip(ROLES, free, strict=True))
        self.journalled = ScxEntry(
            pin_dir=str(self.pin_dir), groups={str(r): g for r, g in self.groups.items()}
        )
        self.journal.put(self.journalled.kind, self.journalled)
        for role in ROLES:
            self.journal.wrote(self.knob_for(role), scx_maps.WEIGHT_DEFAULT)
        self.journal.flush()
        for role in ROLES:
            self._write(role, scx_maps.WEIGHT_DEFAULT)

    def _write(self, role: Role, weight: int) -> None:
        group = self.groups[role]
        try:
            self.maps.set_weight(group, weight)
            got = self.maps.weight(group)
        except OSError as e:
            raise Stuck(f"cannot write group {group} in {self.pin_dir}/weights: {e}") from e
        if got is None or got[0] != weight:
            raise Stuck(f"{self.pin_dir}/weights group {group} reads back {got} after {weight}")
        self.weight[role] = weight

    def _place(self, role: Role, pids: tuple[int, ...]) -> None:
        """Journal, then put each new process of the role in its group, and verify."""
        if self.journalled is None:
            return
        new = [p for p in pids if p not in self.placed]
        if not new:
            return
        group = self.groups[role]
        for pid in new:
            self.journalled.members[str(pid)] = (start_time(pid), group)
        self.journal.touch()
        self.journal.flush()
        for pid in new:
            try:
                self.maps.add_member(scx_maps.MEMBER_TGID, pid, group)
                got = self.maps.member(scx_maps.MEMBER_TGID, pid)
            except OSError as e:
                raise Stuck(f"cannot put pid {pid} in group {group}: {e}") from e
            if got != group:
                raise Stuck(f"pid {pid} is in group {got} after putting it in {group}")
            self.placed[pid] = self.journalled.members[str(pid)][0]

    def _prune(self) -> None:
        """Drop processes that exited: their PID may come back as someone else's."""
        if self.journalled is None:
            return
        gone = [p for p, start in self.placed.items() if start_time(p) != start]
        for pid in gone:
            try:
                self.maps.remove_member(scx_maps.MEMBER_TGID, pid)
            except OSError:
                continue  # still journalled: restore tries again
            del self.placed[pid]
            self.journalled.members.pop(str(pid), None)
            self.journal.touch()
        self.journal.flush()

    # --- when sched_ext ejects the scheduler ------------------------------------------------

    def _fallback(self, members: Members) -> Backend | None:
        """If our scheduler stopped, the backend that carries on (made once), else None.

        Raises:
            Stuck: it stopped and there is nothing to fall back to.
        """
        if self.fallback is not None:
            return self.fallback
        st = self.status(self.pin_dir)
        if st.loaded:
            return None
        if self.make_fallback is None:
            raise Stuck(st.reason)
        backend = self.make_fallback()
        why = type(backend).available(self.ctx.mounts).reason
        log.warning("weights: %s; falling back to %s (%s)", st.reason, backend.name, why)
        self.fallback = backend
        for role, factor in self.factor.items():
            if role not in self.yielded:
                backend.set(self.knob_for(role), factor, members)
        return backend

    # --- the Backend API --------------------------------------------------------------------

    def set(self, knob: str, value: float, members: Members) -> str:
        factor = by_name(knob).check(value)  # off the ladder: refused before the map
        role = self.roles[knob]
        fallback = self._fallback(members)
        if fallback is not None:
            self.factor[role] = factor
            return fallback.set(knob, factor, members) + " (sched_ext scheduler stopped)"
        if self.journalled is None:
            self._begin()
            for r in ROLES:
                self._place(r, _pids(r, members))
        weight = weight_for(factor)
        self.journal.wrote(knob, weight)
        self.journal.flush()
        self._write(role, weight)
        self.factor[role] = factor
        self._place(role, _pids(role, members))
        group = self.groups[role]
        n = sum(1 for g in self.placed_groups() if g == group)
        return f"sched_ext weight {weight} for group {group} ({n} process(es))"

    def placed_groups(self) -> list[int]:
        """The group of every process this session put in the maps."""
        return [] if self.journalled is None else [g for _, g in self.journalled.members.values()]

    def read(self, members: Members) -> dict[str, float]:
        """The groups' weights from the map; the node's (cgroups, nice) for roles not in it."""
        if self.fallback is not None:
            return self.fallback.read(members)
        values = weight_values(members, self.ctx.mounts, self.ctx.cgroup_parent)
        for role, group in self.groups.items():
            try:
                got = self.maps.weight(group)
            except OSError:
                continue
            if got is not None:
                knob = by_name(self.knob_for(role))
                values[knob.name] = knob.value(knob.index(got[0] / scx_maps.WEIGHT_DEFAULT))
        return values

    def follow(self, members: Members) -> list[Notice]:
        if self.journalled is None and self.fallback is None:
            return []
        try:
            fallback = self._fallback(members)
        except Stuck as e:
            return [Notice(k, "stuck", str(e)) for k in self.knobs]
        if fallback is not None:
            return fallback.follow(members)
        out: list[Notice] = []
        self._prune()
        for role in ROLES:
            if role in self.yielded:
                continue
            knob = self.knob_for(role)
            try:
                got = self.maps.weight(self.groups[role])
            except OSError as e:
                out.append(Notice(knob, "stuck", f"cannot read {self.pin_dir}/weights: {e}"))
                continue
            if got is None or got[0] != self.weight.get(role):
                self.yielded.add(role)
                found = None if got is None else got[0] / scx_maps.WEIGHT_DEFAULT
                why = f"sched_ext group {self.groups[role]} was set to {got} behind our back"
                out.append(Notice(knob, "yield", why, found))
                continue
            try:
                self._place(role, _pids(role, members))
            except Stuck as e:
                out.append(Notice(knob, "stuck", str(e)))
        return out

    @classmethod
    def restore(cls, record: Record, entries: Sequence[JournalEntry]) -> list[Decision]:
        """Clear what a session put in the scheduler's maps; unload the scheduler if it was the
        last. A scheduler that is already gone counts as restored."""
        out: list[Decision] = []
        for e in entries:
            if not isinstance(e, ScxEntry):
                continue
            try:
                out.extend(_replay_entry(record, e))
            except OSError as err:
                out.append(Decision("sched_ext", Role.OTHER, None, None, str(err), FAILED))
        return out


# --- restore ----------------------------------------------------------------------------------


def _replay_entry(record: Record, e: ScxEntry) -> list[Decision]:
    pin_dir = Path(e.pin_dir)
    groups = {Role(r): g for r, g in e.groups.items()}
    try:
        maps = scx_maps.SchedulerMaps(pin_dir)
    except OSError:
        # Nothing pinned: the scheduler is gone already (unloaded, or the node rebooted).
        scx.unload(pin_dir)
        return [
            Decision(
                ScxWeights.knob_for(r),
                r,
                None,
                1.0,
                "restore",
                RESTORE,
                detail=f"{pin_dir} is gone",
            )
            for r in groups
        ]
    out: list[Decision] = []
    left = False
    with maps:
        for role, group in groups.items():
            knob = ScxWeights.knob_for(role)
            got = maps.weight(group)
            old = None if got is None else got[0] / scx_maps.WEIGHT_DEFAULT
            if got is not None and got[0] not in record.written.get(knob, []):
                left = True
                why = "set by someone else after us"
                out.append(Decision(knob, role, old, old, why, LEFT, detail=f"group {group}"))
                continue
            for pid, (_, g) in e.members.items():
                if g == group and maps.member(scx_maps.MEMBER_TGID, int(pid)) == group:
                    maps.remove_member(scx_maps.MEMBER_TGID, int(pid))
            maps.clear_weight(group)
            detail = f"group {group} cleared in {pin_dir}"
            out.append(Decision(knob, role, old, 1.0, "restore", RESTORE, detail=detail))
        others = bool(maps.groups() or maps.members())
    if left or others:
        return out  # the scheduler still serves someone: leave it loaded
    st = scx.unload(pin_dir)
    event = FAILED if st.pinned or st.loaded else RESTORE
    detail = f"scheduler unloaded (sched_ext {st.state})"
    out.append(Decision("sched_ext", Role.OTHER, None, None, "restore", event, detail=detail))
    return out
