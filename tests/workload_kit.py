"""The bundled recorded workloads, loaded once per test session.

Loading the seven bundled traces and precomputing their replay rows takes about 5 s; a test that
builds a ``ReplayEnv`` from names pays it again. A ``ReplayEnv`` built on these ``Workload``
objects shares their per-row precomputation (``Workload.replay_cache``), exactly as the several
envs of a vectorized trainer do in production. Tests only read them: nothing here is a double.
``tests/`` is on ``sys.path`` (its conftest.py), so any test folder imports this as
``workload_kit``. Tests of loading itself (bad files, the registered id) still load by name.
"""

from __future__ import annotations

from functools import cache

from autotune.envs.workload import Workload, list_bundled, load

NAMES: list[str] = list_bundled()


@cache
def workload(name: str) -> Workload:
    """The bundled workload ``name``, loaded once per session (shared: do not modify it)."""
    return load(name)


def bundled(n: int | None = None) -> list[Workload]:
    """The first ``n`` bundled workloads (all of them by default), as ``ReplayEnv`` takes them."""
    return [workload(name) for name in NAMES[:n]]
