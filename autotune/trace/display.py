"""What people see of traces: the live view while recording, and a recording's summary."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from autotune.features import hist_quantile
from autotune.knobs import KNOBS
from autotune.roles import ROLE_INDEX, ROLES
from autotune.telemetry.sample import B, C, Sample
from autotune.trace.summary import Summary, progress_unit


def _fmt(value: float | None, spec: str = ".2f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _p99_us(sample: Sample, role_index: int) -> float | None:
    hist = sample.runq_hist[role_index]
    if hist.sum() == 0:
        return None
    return float(2.0 ** hist_quantile(hist, 0.99)[0, 0])


class LiveView:
    """A live table of the latest interval, redrawn on each row when stderr is a terminal.

    Args:
        console: where to draw (a terminal; otherwise nothing is drawn).
        target: the target's description.
        path: the trace being written.
    """

    def __init__(self, console: Console, target: str, path: str) -> None:
        self.console = console
        self.target = target
        self.path = path
        self.rows = 0
        self.start = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)

    def update(self, sample: Sample) -> None:
        """Show one more interval."""
        self.rows += 1
        if self._live is not None:
            self._live.update(self.render(sample))

    def render(self, s: Sample) -> RenderableType:
        """The view of one interval."""
        dt = max(s.interval_s, 1e-9)
        head = Text.assemble(
            ("recording ", "bold"),
            self.target,
            f"  {time.monotonic() - self.start:.0f} s, {self.rows} rows, {s.source} → {self.path}",
        )
        roles = Table(box=None, padding=(0, 2))
        for col in ("role", "CPUs busy", "run-queue p99", "threads", "ctx sw/s"):
            roles.add_column(col, justify="right" if col != "role" else "left")
        missing = s.missing
        for r in ROLES:
            i = ROLE_INDEX[r]
            row = s.roles[i]
            roles.add_row(
                str(r),
                "n/a" if "oncpu_ns" in missing else f"{row[C['oncpu_ns']] / 1e9 / dt:.2f}",
                "n/a" if "runq_hist" in missing else _fmt(_p99_us(s, i), ".0f", " µs"),
                str(row[C["threads"]]),
                f"{(row[C['nvcsw']] + row[C['nivcsw']]) / dt:.0f}",
            )
        ra = sum(
            int(s.roles[ROLE_INDEX[r]][C["ra_sync"]] + s.roles[ROLE_INDEX[r]][C["ra_async"]])
            for r in ROLES
        )
        progress = s.progress_samples if s.progress_samples > 0 else s.progress_steps
        unit = progress_unit(s.progress_source, s.progress_samples)
        node = Text(
            f"read {s.block[B['read_bytes']] / 1e6 / dt:.1f} MB/s   readahead {ra / dt:.0f}/s   "
            f"progress {progress / dt:.1f} {unit}/s ({s.progress_source})"
        )
        knobs = Text(
            "knobs: "
            + "  ".join(f"{k.name}={s.knobs[k.name]:g}" for k in KNOBS if k.name in s.knobs)
        )
        return Group(head, roles, node, knobs)


def render_summary(s: Summary) -> RenderableType:
    """A recording's summary as rich text and tables."""
    m = s.meta
    head = Table(box=None, show_header=False, padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    state = "complete" if m.get("complete") else "unfinished (partial)"
    head.add_row("target", " ".join(str(m.get("target")).split()))
    head.add_row("host", f"{m.get('host')} (kernel {m.get('kernel')}, {m.get('cpus')} CPUs)")
    head.add_row("started", str(m.get("start_time")))
    head.add_row("duration", f"{s.duration_s:.1f} s, {s.rows} rows, {state}")
    head.add_row("telemetry", f"{m.get('source')}, every {m.get('interval_s')} s")
    head.add_row("explore", "yes" if m.get("explore") else "no")
    if m.get("exit_status") is not None:
        head.add_row("job exit status", str(m.get("exit_status")))
    roles = Table(title="roles", title_justify="left")
    for col in ("role", "CPUs busy (mean)", "run-queue p50", "run-queue p99", "threads (max)"):
        roles.add_column(col, justify="left" if col == "role" else "right")
    for name, f in s.roles.items():
        roles.add_row(
            name,
            _fmt(f.cpu_cores),
            _fmt(f.runq_p50_us, ".0f", " µs"),
            _fmt(f.runq_p99_us, ".0f", " µs"),
            _fmt(f.threads_max, "d"),
        )
    io = Table(box=None, show_header=False, padding=(0, 2))
    io.add_column(style="bold")
    io.add_column()
    io.add_row("read", f"{_fmt(s.read_mbps)} MB/s mean, {_fmt(s.read_mbps_peak)} MB/s peak")
    io.add_row("block latency p99", _fmt(s.blk_lat_p99_us, ".0f", " µs"))
    io.add_row(
        "readahead events",
        f"{_fmt(s.ra_sync, 'd')} sync, {_fmt(s.ra_async, 'd')} async, "
        f"mean {_fmt(s.ra_mean_kib, '.0f', ' KiB')}",
    )
    io.add_row(
        "progress",
        f"{s.progress_total:g} {s.progress_unit}, {_fmt(s.progress_rate)} {s.progress_unit}/s "
        f"({s.progress_source})",
    )
    knobs = Table(title="knob settings visited", title_justify="left")
    knobs.add_column("setting")
    knobs.add_column("time", justify="right")
    for setting, secs in s.settings:
        text = "  ".join(f"{k}={v:g}" for k, v in setting.items()) or "(unknown)"
        knobs.add_row(text, f"{secs:.1f} s")
    return Group(head, roles, io, knobs)
