"""CPU affinity on real threads: whole cores, role ends, new threads followed, yield, restore."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from actuator_kit import Job, cpus_allowed, online, role_cpus

from autotune.actuators import Actuators, DecisionLog
from autotune.actuators.affinity import allocate
from autotune.config import Settings
from autotune.system.topology import Topology, read

# Four cores with two SMT siblings each, numbered as Linux does on x86 (0/4, 1/5, ...).
SMT8 = Topology(cpus=tuple(range(8)), cores=((0, 4), (1, 5), (2, 6), (3, 7)), numa_nodes={})


def test_allocation_takes_whole_cores_from_each_end() -> None:
    pool = range(8)
    assert allocate(SMT8, pool, 0.25, high_end=False) == {0, 4}
    assert allocate(SMT8, pool, 0.25, high_end=True) == {3, 7}
    assert allocate(SMT8, pool, 0.5, high_end=False) == {0, 1, 4, 5}
    assert allocate(SMT8, pool, 1.0, high_end=True) == set(range(8))
    # Never zero CPUs, and siblings stay together unless asked.
    assert allocate(SMT8, pool, 0.01, high_end=False) == {0, 4}
    assert allocate(SMT8, pool, 0.25, high_end=False, split_smt=True) == {0, 1}
    # Within a cpuset that holds only some CPUs of a core, what is left of the core.
    assert allocate(SMT8, [0, 1, 2, 3], 0.25, high_end=True) == {3}


def test_roles_confined_and_restored(spawn: Callable[..., Job], settings: Settings) -> None:
    job = spawn("--loaders", "2")
    everything = online()
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        got = act.apply({"cpus.trainer": 0.5, "cpus.loader": 0.5}, reason="test")
        topo = read()
        want_t = allocate(topo, sorted(everything), 0.5, high_end=False)
        want_l = allocate(topo, sorted(everything), 0.5, high_end=True)
        trainer, loader = role_cpus(job.target)
        assert trainer and all(c == want_t for c in trainer)
        assert loader and all(c == want_l for c in loader)
        assert cpus_allowed(job.proc.pid) == want_t  # /proc/<pid>/status
        assert got["cpus.trainer"] == act.current()["cpus.trainer"]
        assert settings.journal.exists()
    trainer, loader = role_cpus(job.target)
    assert all(c == everything for c in trainer + loader)


def test_shares_that_grant_the_same_cpus_set_the_same_thing(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "1")
    topo, pool = read(), sorted(online())
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        for a, b in ((0.25, 0.5), (0.5, 0.75), (0.75, 1.0), (0.25, 1.0)):
            for knob, high in (("cpus.trainer", False), ("cpus.loader", True)):
                same = allocate(topo, pool, a, high_end=high) == allocate(
                    topo, pool, b, high_end=high
                )
                assert act.same_effect(knob, a, b) is same
        assert act.same_effect("readahead", 128.0, 128.0)
        assert not act.same_effect("readahead", 128.0, 256.0)
    if len(pool) == 2:  # this VM: one CPU is a quarter and a half of the node alike
        assert allocate(topo, pool, 0.25, high_end=False) == allocate(
            topo, pool, 0.5, high_end=False
        )


def test_threads_and_processes_born_after_the_action_follow_it(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    job = spawn("--loaders", "1")
    everything = sorted(online())
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        act.apply({"cpus.trainer": 0.5, "cpus.loader": 0.5})
        topo = read()
        want_t = allocate(topo, everything, 0.5, high_end=False)
        want_l = allocate(topo, everything, 0.5, high_end=True)
        job.send("threads 2")  # inherit the trainer's CPUs
        job.send("threads 2 free")  # start on every CPU: new threads, not a change behind us
        job.send("fork")  # a loader born of the trainer: it starts on the trainer's CPUs
        act.follow()
        trainer, loader = role_cpus(job.target)
        assert len(trainer) >= 6 and all(c == want_t for c in trainer)
        assert len(loader) >= 4 and all(c == want_l for c in loader)
        assert "cpus.trainer" not in act.disabled
        assert "cpus.loader" not in act.disabled
    trainer, loader = role_cpus(job.target)
    assert all(c == set(everything) for c in trainer + loader)


def test_a_loader_forked_from_the_pinned_trainer_gets_the_machines_cpus_back(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    """Only the trainer is set: a loader it forks inherits its CPUs, and the follow gives the
    loader what it had without us. Left there, it read back as "one CPU of two", the policy's
    own wish for the loaders was never written, and trainer and loaders shared one CPU."""
    everything = sorted(online())
    if len(everything) < 2:
        pytest.skip("needs two CPUs to pin the trainer to fewer than all")
    job = spawn("--loaders", "1")
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        act.apply({"cpus.trainer": 0.5})
        want_t = allocate(read(), everything, 0.5, high_end=False)
        job.send("fork")  # born on the trainer's CPUs
        newest = max(job.target.members().loader_pids)
        assert cpus_allowed(newest) == want_t  # inherited, before the follow
        act.follow()
        trainer, loader = role_cpus(job.target)
        assert trainer and all(c == want_t for c in trainer)
        assert len(loader) >= 4 and all(c == set(everything) for c in loader)
        assert act.current()["cpus.loader"] == 1.0
        assert "cpus.loader" not in act.disabled
        act.apply({"cpus.trainer": 1.0})  # the trainer back: nothing of ours left anywhere
        act.follow()
        trainer, loader = role_cpus(job.target)
        assert all(c == set(everything) for c in trainer + loader)
    trainer, loader = role_cpus(job.target)
    assert all(c == set(everything) for c in trainer + loader)


def test_a_thread_pinned_by_someone_is_left_to_them(
    spawn: Callable[..., Job], settings: Settings
) -> None:
    everything = sorted(online())
    if len(everything) < 2:
        pytest.skip("needs two CPUs to pin a thread elsewhere")
    job = spawn("--loaders", "1")
    m = job.target.members()
    with Actuators(job.target, settings, log=DecisionLog(console=False)) as act:
        act.apply({"cpus.trainer": 0.5})
        theirs = {everything[-1]}
        os.sched_setaffinity(m.trainer_tids[-1], theirs)  # a person pins one thread
        act.follow()
        assert "behind our back" in act.disabled["cpus.trainer"]
        act.apply({"cpus.trainer": 1.0})  # no longer touched
        assert cpus_allowed(job.proc.pid, m.trainer_tids[-1]) == theirs
    assert cpus_allowed(job.proc.pid, m.trainer_tids[-1]) == theirs  # not restored over
    assert cpus_allowed(job.proc.pid) == set(everything)  # ours, restored
