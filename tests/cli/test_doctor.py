"""`autotune doctor --json`: the BPF probe really loads and fires; every capability reported."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]

EXPECTED = {
    "python",
    "bpf",
    "kernel headers",
    "btf",
    "sched_ext",
    "cgroups",
    "block devices",
    "cpu topology",
    "gpu",
    "mlflow tracking",
    "backends",
}


@pytest.mark.bpf
@pytest.mark.root
def test_doctor_json_proves_bpf_loaded(run_cli: Run) -> None:
    r = run_cli("doctor", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    assert set(report["checks"]) == EXPECTED
    bpf = report["checks"]["bpf"]
    assert bpf["ok"] is True
    assert bpf["data"]["loaded"] is True
    # doctor forks three processes while the probe is attached: each must be seen.
    assert bpf["data"]["events"] >= 3
    headers = report["checks"]["kernel headers"]
    assert headers["data"]["mode"] in {"exact", "fallback"}
    # Every "no" says why.
    for check in report["checks"].values():
        if not check["ok"]:
            assert check["reason"], check


def test_doctor_table(run_cli: Run) -> None:
    r = run_cli("doctor")
    assert r.returncode == 0, r.stderr
    for name in ("bpf", "cgroups", "backends", "cpu topology"):
        assert name in r.stdout
