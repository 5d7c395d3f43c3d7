"""`autotune status`: what the running service tunes now, read from its state file.

Exit status 0 when a service runs, 3 when none does (``systemctl status``'s "not running", so a
script can tell "no service" from a mistake), 2 for a mistake (a bad state directory or file).
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import click

from autotune import config
from autotune.errors import UserError

if TYPE_CHECKING:
    from autotune.service.state import ServiceState

NOT_RUNNING = 3


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object: {'services': [...]}.")
@click.option("--cgroup", help="Only the service tuning this cgroup (path or slice name).")
@click.option("--config", "config_file", type=click.Path(), help="Settings file (TOML).")
def status(as_json: bool, cgroup: str | None, config_file: str | None) -> int:
    """What the running service tunes now: its jobs, their knobs per role, the guard's state
    (warming up, trying, tuned, held off, fallen back) and the last decisions with reasons.

    Exits 3 when no service is running (as `systemctl status` does).
    """
    from autotune.service import state as st

    settings = config.load({}, config_file)
    if settings.state_dir.exists() and not settings.state_dir.is_dir():
        raise UserError(f"the state directory {settings.state_dir} is not a directory")
    services = st.running(settings.state_dir) if settings.state_dir.is_dir() else []
    if cgroup is not None:
        from autotune.service.slices import resolve

        path = str(resolve(cgroup))
        services = [s for s in services if s.cgroup == path]
    if as_json:
        click.echo(json.dumps({"services": [s.model_dump() for s in services]}, indent=1))
    elif services:
        for s in services:
            _show(s)
    if not services:
        where = f" on {cgroup}" if cgroup else ""
        sys.stderr.write(
            f"autotune: no autotune service is running{where} (no live state in "
            f"{settings.state_dir})\n"
        )
        return NOT_RUNNING
    return 0


def _show(s: ServiceState) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False)
    age = time.time() - s.updated
    dry = " (dry run)" if s.dry_run else ""
    out.print(
        f"[bold]autotune service[/] PID {s.pid} on {s.cgroup}{dry}: model {s.model}, "
        f"every {s.interval_ms} ms, updated {age:.1f} s ago; tuner {s.tuner_cpu_percent:.1f}% "
        f"CPU, {s.tuner_rss_mb:.0f} MB"
    )
    t = s.totals
    out.print(
        f"jobs: {len(s.jobs)} now, {t.jobs_seen} seen; {t.decisions} changes, {t.rollbacks} "
        f"rolled back, {t.fallbacks} fallbacks"
        + (f"; metrics on :{s.metrics_port}" if s.metrics_port else "")
    )
    if s.jobs:
        table = Table("job", "command", "guard", "rate / default", "knobs")
        for j in s.jobs:
            ratio = f"{j.rate / j.reference_rate:.2f}" if j.reference_rate > 0 else "-"
            knobs = " ".join(f"{k}={v:g}" for k, v in sorted(j.knobs.items()))
            table.add_row(str(j.pid), j.command[:40], j.guard, ratio, knobs)
        out.print(table)
    if s.recent:
        out.print("last decisions:")
        for d in s.recent:
            when = time.strftime("%H:%M:%S", time.localtime(d.time))
            old = "?" if d.old is None else f"{d.old:g}"
            new = "?" if d.new is None else f"{d.new:g}"
            out.print(
                f"  {when} job {d.pid}: {d.knob} {d.role} {old} → {new} {d.event}: {d.reason}"
            )
