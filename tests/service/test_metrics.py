"""The service's Prometheus endpoint, scraped by a real Prometheus server (Debian's
`prometheus`, started here on free local ports with its own storage) while the service tunes a
real job; the series are read back through Prometheus' HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import Jobs, Service, wait_for

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as r:
                doc = json.load(r)
        except OSError:
            return []
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def value(self, promql: str, **labels: str) -> float | None:
        for series in self.query(promql):
            if all(series["metric"].get(k) == v for k, v in labels.items()):
                return float(series["value"][1])
        return None


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Prometheus, int]]:
    """A Prometheus server scraping 127.0.0.1:<target port> every second; stopped afterwards."""
    exe = shutil.which("prometheus")
    if exe is None:
        pytest.skip("prometheus is not installed (scripts/bootstrap.sh installs it)")
    target, web = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: autotune\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        yield Prometheus(f"http://127.0.0.1:{web}"), target
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_prometheus_scrapes_the_service_while_it_tunes(
    service: Service,
    jobs: Jobs,
    policy: Path,
    slice_dir: Path,
    prometheus: tuple[Prometheus, int],
) -> None:
    prom, port = prometheus
    svc = service.start(policy, slice_dir, "--metrics-port", str(port))
    job = jobs.start(slice_dir, seconds=120)
    pid = str(job.pid)
    # The policy's 2x weight, as Prometheus stored it from a scrape.
    assert wait_for(
        lambda: prom.value('autotune_knob_value{knob="weight.trainer"}', pid=pid) == 2.0, 120
    ), prom.query("autotune_knob_value")
    assert prom.value("autotune_knob_value", pid=pid, knob="weight.trainer", role="trainer") == 2.0
    assert (prom.value("autotune_decisions_total") or 0) >= 1
    assert prom.value("autotune_jobs") == 1
    assert prom.value("autotune_jobs_seen_total") == 1
    assert prom.value("autotune_rollbacks_total") is not None
    assert prom.value("autotune_fallbacks_total") is not None
    assert (prom.value("autotune_progress_rate", pid=pid) or 0) > 0
    guard = {s["metric"]["state"] for s in prom.query(f'autotune_guard_state{{pid="{pid}"}} == 1')}
    assert guard <= {"trying", "tuned"} and len(guard) == 1
    rss = prom.value("autotune_process_resident_memory_bytes")
    assert rss is not None and rss > 10e6
    assert prom.value("autotune_process_cpu_seconds_total") is not None
    assert prom.value("autotune_tuner_cpu_percent") is not None
    # The job leaves: its series go stale on the next scrape (Prometheus' staleness marker),
    # the counters stay.
    job.kill()
    job.wait()
    assert wait_for(lambda: prom.value("autotune_jobs") == 0, 60)
    assert wait_for(lambda: prom.query(f'autotune_knob_value{{pid="{pid}"}}') == [], 30)
    assert prom.value("autotune_jobs_seen_total") == 1
    svc.terminate()
    assert svc.wait(60) == 0
