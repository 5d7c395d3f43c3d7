"""The service's Prometheus endpoint (``--metrics-port``), from the same state as the state file.

Series (``pid`` is the job's root PID, ``command`` what it runs; not ``job``, which is
Prometheus' own target label):

- ``autotune_knob_value{pid,command,knob,role}``: each knob in effect, ladder units.
- ``autotune_progress_rate{pid,command}`` and ``autotune_reference_rate{pid,command}``: the
  job's progress per second now and at default knobs (the warm-up's mean).
- ``autotune_guard_state{pid,command,state}``: 1 for the guard's state, 0 for the others.
- ``autotune_jobs``: jobs tuned now; ``autotune_jobs_seen_total``, ``autotune_decisions_total``,
  ``autotune_rollbacks_total``, ``autotune_fallbacks_total``: over the service's life.
- ``autotune_process_cpu_seconds_total``, ``autotune_process_resident_memory_bytes`` (the
  tuner's own, prometheus-client's process collector) and ``autotune_tuner_cpu_percent`` (of one
  core, over the last interval).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autotune.errors import NotPermitted, UserError
from autotune.knobs import by_name
from autotune.service.state import GUARD_STATES, ServiceState


class StateCollector(Collector):
    """Turns the service's current state into metric families at each scrape."""

    def __init__(self, snapshot: Callable[[], ServiceState]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        job = ["pid", "command"]
        knob = GaugeMetricFamily(
            "autotune_knob_value", "Knob in effect (ladder units)", labels=[*job, "knob", "role"]
        )
        rate = GaugeMetricFamily("autotune_progress_rate", "Job progress per second", labels=job)
        ref = GaugeMetricFamily(
            "autotune_reference_rate", "Job progress per second at default knobs", labels=job
        )
        guard = GaugeMetricFamily(
            "autotune_guard_state", "1 for the guard's state of the job", labels=[*job, "state"]
        )
        for j in s.jobs:
            ids = [str(j.pid), j.command[:80]]
            for name, value in sorted(j.knobs.items()):
                knob.add_metric([*ids, name, str(by_name(name).role)], value)
            rate.add_metric(ids, j.rate)
            ref.add_metric(ids, j.reference_rate)
            for state in GUARD_STATES:
                guard.add_metric([*ids, state], float(state == j.guard))
        yield from (knob, rate, ref, guard)
        yield GaugeMetricFamily("autotune_jobs", "Jobs tuned now", value=len(s.jobs))
        t = s.totals
        for name, value, what in (
            ("autotune_jobs_seen", t.jobs_seen, "Jobs the service has tuned"),
            ("autotune_decisions", t.decisions, "Knob changes written"),
            ("autotune_rollbacks", t.rollbacks, "Changes rolled back by the guard"),
            ("autotune_fallbacks", t.fallbacks, "Falls back to the default knobs"),
        ):
            yield CounterMetricFamily(name, what, value=value)
        yield GaugeMetricFamily(
            "autotune_tuner_cpu_percent",
            "The tuner's CPU over the last interval, % of one core",
            value=s.tuner_cpu_percent,
        )


def serve(port: int, addr: str, snapshot: Callable[[], ServiceState]) -> Callable[[], None]:
    """Serve the metrics on ``addr:port``; returns the function that stops the server.

    Raises:
        UserError: the port is taken or cannot be bound.
    """
    registry = CollectorRegistry()
    registry.register(StateCollector(snapshot))
    ProcessCollector(namespace="autotune", registry=registry)
    try:
        server: Any = start_http_server(port, addr=addr, registry=registry)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(
                f"metrics port {port} is taken (another process listens on it); "
                "choose another with --metrics-port"
            ) from None
        if e.errno == errno.EACCES:
            raise NotPermitted(f"metrics port {port}: permission denied") from None
        raise UserError(f"cannot serve metrics on {addr}:{port}: {e.strerror or e}") from None
    # prometheus-client >= 0.17 returns (server, thread); older ones nothing to stop with.
    if isinstance(server, tuple):
        httpd = server[0]

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()

        return stop
    return lambda: None
