"""The live view of a tuning session: knobs per role, progress, the last decisions and why."""

from __future__ import annotations

from collections import deque

from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from autotune.actuators import Decision
from autotune.daemon.loop import Tick
from autotune.knobs import KNOBS


class LiveView:
    """A rich Live panel refreshed once per interval; decisions arrive through :meth:`decision`."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.decisions: deque[str] = deque(maxlen=6)
        self.live = Live(Text("starting…"), refresh_per_second=4, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def decision(self, d: Decision) -> None:
        self.decisions.append(d.line())

    def tick(self, t: Tick) -> None:
        knobs = Table(title=self.title, title_justify="left", expand=False)
        knobs.add_column("knob")
        knobs.add_column("role")
        knobs.add_column("value", justify="right")
        for k in KNOBS:
            v = t.knobs.get(k.name)
            knobs.add_row(k.name, str(k.role), "?" if v is None else f"{v:g}")
        ratio = f"{t.rate / t.reference:.2f}× default" if t.reference > 0 else "measuring default"
        status = Text(
            f"progress {t.rate:,.0f}/s ({ratio})  ·  {t.verdict.event or 'tuning'}  ·  "
            f"loop {t.loop_ms:.1f} ms, {t.cpu_percent:.1f}% CPU  ·  {t.t:.0f} s"
        )
        last = Text("\n".join(self.decisions) or "no decisions yet", style="dim")
        parts: list[RenderableType] = [knobs, status, *([Text(t.adapt)] if t.adapt else []), last]
        self.live.update(Group(*parts))
