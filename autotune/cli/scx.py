"""`autotune scx`: our sched_ext scheduler (status, load, unload)."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from autotune.actuators import registry
from autotune.knobs import Family
from autotune.scx import scheduler as scx


@click.group(name="scx")
def scx_group() -> None:
    """Our sched_ext scheduler: the weights backend on kernels with sched_ext.

    Loaded, it carries the weight knobs (one map update per change, no cgroup moves); tuning
    sessions then prefer it. Without sched_ext the weights use cgroups or nice values.
    """


def _show(st: scx.Status) -> str:
    if st.loaded:
        return f"loaded: sched_ext {st.state}, scheduler {st.ops}, pinned in {scx.PIN_DIR}"
    return f"not loaded: {st.reason}"


@scx_group.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Whether our scheduler runs, and if not, why not."""
    st = scx.status()
    click.echo(json.dumps(asdict(st)) if as_json else _show(st))


@scx_group.command()
def load() -> None:
    """Build our scheduler for this kernel and load it (root)."""
    try:
        st = scx.load()
    except scx.ScxUnavailable as e:  # say what the weights use meanwhile
        _, choice = registry.choose(Family.WEIGHTS, exclude=("sched_ext",))
        raise scx.ScxUnavailable(f"{e}; weights use {choice.backend}: {choice.reason}") from e
    click.echo(_show(st))


@scx_group.command()
def unload() -> None:
    """Unload our scheduler: every task goes back to the kernel's fair class (root)."""
    st = scx.unload()
    click.echo("unloaded" if not st.loaded and not st.pinned else _show(st))
