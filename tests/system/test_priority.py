"""autotune.system.priority: the calling thread at SCHED_FIFO, and only while asked."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap
import threading

import pytest

from autotune.system.priority import normal, realtime


def _policy(tid: int) -> tuple[int, int]:
    """(policy, rt_priority) of a thread of this process, as /proc shows it to others."""
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[38]), int(fields[37])  # fields 41 and 40 of proc(5)


@pytest.mark.root
def test_the_calling_thread_alone_and_only_inside_the_block() -> None:
    other: list[tuple[int, int]] = []
    started = threading.Event()
    done = threading.Event()

    def bystander() -> None:
        started.set()
        done.wait(30)

    t = threading.Thread(target=bystander)
    t.start()
    started.wait(30)
    me = threading.get_native_id()
    try:
        with realtime(3) as raised:
            assert raised
            assert _policy(me) == (os.SCHED_FIFO, 3)
            other.append(_policy(t.native_id or 0))
    finally:
        done.set()
        t.join()
    assert other == [(os.SCHED_OTHER, 0)]  # the process's other threads keep theirs
    assert _policy(me) == (os.SCHED_OTHER, 0)  # put back


@pytest.mark.root
def test_a_thread_started_inside_inherits_it_until_it_asks_for_normal() -> None:
    seen: list[tuple[int, int]] = []

    def child() -> None:
        me = threading.get_native_id()
        seen.append(_policy(me))
        normal()
        seen.append(_policy(me))

    with realtime(1):
        t = threading.Thread(target=child)
        t.start()
        t.join()
    assert seen == [(os.SCHED_FIFO, 1), (os.SCHED_OTHER, 0)]


def test_priority_0_changes_nothing() -> None:
    me = threading.get_native_id()
    before = _policy(me)
    with realtime(0) as raised:
        assert not raised
        assert _policy(me) == before


def _no_rtprio() -> None:
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))


@pytest.mark.root
def test_without_the_privilege_the_thread_keeps_its_policy() -> None:
    # Root without CAP_SYS_NICE in its bounding set (and RLIMIT_RTPRIO 0): refused by the kernel.
    code = textwrap.dedent(
        """
        import os
        from autotune.system.priority import realtime
        with realtime(1) as raised:
            print(raised, os.sched_getscheduler(0) == os.SCHED_OTHER)
        """
    )
    r = subprocess.run(
        ["setpriv", "--bounding-set=-all", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_no_rtprio,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]
