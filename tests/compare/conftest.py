"""Runs made through the tracking API for compare tests: training, evaluation, tuning."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from autotune.knobs import KNOBS
from autotune.tracking import schema, tracked_run

WORKLOADS = ("cnn", "shards")
BASELINES = ("default", "heuristic", "static-best")
SEEDS = (0, 1, 2)


@dataclass
class Made:
    """What the fixture logged, to check the comparison against."""

    uri: str
    runs_dir: Path
    train_ids: dict[str, str] = field(default_factory=dict)  # algo → run id
    session_ids: list[str] = field(default_factory=list)
    values: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (policy, wl)


def _progress(policy: str, workload: str, seed: int) -> float:
    base = {"default": 1.0, "heuristic": 1.05, "static-best": 1.2, "ppo": 1.3}[policy]
    return base + (0.02 if workload == "shards" else 0.0) + 0.01 * (seed - 1)


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory, empty_store: Path) -> Made:
    """One store with 2 training runs, an evaluation (27 results) and 2 tuning sessions."""
    root = tmp_path_factory.mktemp("compare")
    runs_dir = root / "runs"
    runs_dir.mkdir()
    shutil.copyfile(empty_store, runs_dir / "mlflow.db")
    uri = "sqlite:///" + str(runs_dir / "mlflow.db")
    m = Made(uri=uri, runs_dir=runs_dir)
    policy_dir = root / "policy"
    policy_dir.mkdir()
    (policy_dir / "weights.npz").write_bytes(b"w")
    (policy_dir / "metadata.json").write_text("{}")
    common = {"tracking_uri": uri, "runs_dir": runs_dir}

    for algo, scale in (("ppo", 1.0), ("a2c", 0.7)):
        tags = {schema.TAG_ALGO: algo, schema.TAG_WORKLOADS: ",".join(WORKLOADS)}
        with tracked_run("train", name=f"{algo}-seed0", tags=tags, **common) as run:
            for i in range(1, 11):
                step = i * 256
                run.log_metrics(
                    {
                        schema.M_EPISODE_REWARD: scale * math.log(1 + i),
                        schema.M_EVAL_PROGRESS: 1.0 + scale * 0.03 * i,
                    },
                    step=step,
                )
            run.log_policy(policy_dir)
        m.train_ids[algo] = run.id

    with tracked_run("eval", name="eval", **common) as parent:
        for policy in (*BASELINES, "ppo"):
            for wl in WORKLOADS:
                for seed in SEEDS:
                    tags = {
                        schema.TAG_POLICY: policy,
                        schema.TAG_WORKLOAD: wl,
                        schema.TAG_SEED: seed,
                    }
                    if policy == "ppo":
                        tags[schema.TAG_MODEL_RUN_ID] = m.train_ids["ppo"]
                    value = _progress(policy, wl, seed)
                    m.values.setdefault((policy, wl), []).append(value)
                    with tracked_run("eval_result", parent=parent, tags=tags, **common) as r:
                        r.log_metrics(
                            {
                                schema.M_PROGRESS_VS_DEFAULT: value,
                                schema.M_KNOB_CHANGES_PER_MIN: 2.0,
                                schema.M_WORST_REGRESSION: 0.99,
                            }
                        )

    for n, wl in enumerate(WORKLOADS):
        tags = {
            schema.TAG_MODEL_RUN_ID: m.train_ids["ppo"],
            schema.TAG_TARGET_COMMAND: f"python workloads/{wl}.py --samples 1000",
            schema.TAG_WORKLOAD: wl,
        }
        with tracked_run("tune", tags=tags, **common) as s:
            for step in range(20):
                values = {schema.M_PROGRESS_RATE: 100.0 + step, schema.M_LOOP_CPU: 0.5}
                for knob in KNOBS:
                    level = knob.ladder[min(len(knob.ladder) - 1, (step + n) // 5)]
                    values[schema.knob_metric(knob.name)] = float(level)
                s.log_metrics(values, step=step)
            s.log_metrics({schema.M_PROGRESS_VS_DEFAULT: 1.25 + 0.05 * n}, step=20)
            s.log_dict({"decisions": []}, schema.DECISIONS_ARTIFACT)
        m.session_ids.append(s.id)
    return m


# -- a real headless Chromium, driven over the DevTools protocol --------------------------------

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # runs as root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-port=0",
)


@dataclass
class PageCheck:
    """What Chromium saw loading a page."""

    errors: list[str]  # console errors, uncaught exceptions, error log entries
    requests: list[str]  # every URL the page asked for
    facts: dict[str, Any]  # the result of the probe expression
    screenshot: Path


class _Cdp:
    """A minimal DevTools protocol client: commands in order, events kept as they come."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))


def _errors(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = p["exceptionDetails"]
            thrown = details.get("exception", {}).get("description", "")
            found.append(f"exception: {details.get('text')} {thrown}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in {"error", "assert"}:
            found.append(f"console.{p['type']}: {p.get('args')}")
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            found.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return found


def load_in_chromium(page: Path, probe: str, screenshot: Path) -> PageCheck:
    """Open ``page`` in a fresh headless Chromium, run ``probe`` (JS returning JSON), screenshot.

    Chromium and its profile folder are always removed, whatever happens.
    """
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))
    proc = subprocess.Popen(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        # Its singleton socket folder (org.chromium.Chromium.*) goes in the profile, not /tmp,
        # where a killed browser would leave it behind.
        env={**os.environ, "TMPDIR": str(profile)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(
            urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read()
        )
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        cdp = _Cdp(ws_url)
        try:
            for domain in ("Runtime", "Log", "Network", "Page"):
                cdp.call(f"{domain}.enable")
            cdp.call("Page.navigate", url=page.resolve().as_uri())
            cdp.wait_event("Page.loadEventFired")
            value = cdp.call("Runtime.evaluate", expression=probe, returnByValue=True)
            facts = json.loads(value["result"]["value"])
            size = cdp.call("Page.getLayoutMetrics")["cssContentSize"]
            cdp.call(
                "Emulation.setDeviceMetricsOverride",
                width=1200,
                height=int(size["height"]),
                deviceScaleFactor=1,
                mobile=False,
            )
            shot = cdp.call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            requests = [
                e["params"]["request"]["url"]
                for e in cdp.events
                if e.get("method") == "Network.requestWillBeSent"
            ]
            return PageCheck(_errors(cdp.events), requests, facts, screenshot)
        finally:
            cdp.ws.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium() -> Callable[[Path, str, Path], PageCheck]:
    """The page checker; skips (saying why) where Debian's chromium is not installed."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (scripts/bootstrap.sh installs it)")
    return load_in_chromium
