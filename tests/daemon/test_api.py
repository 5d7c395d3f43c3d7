"""`with autotune.tuning(model=...)` from inside a real training script."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]

SCRIPT = textwrap.dedent(
    """
    import hashlib, os, sys, time
    import autotune
    with autotune.tuning(model=sys.argv[1], interval_ms=100) as tuner:
        assert os.environ["AUTOTUNE_PROGRESS"]
        end = time.monotonic() + 8
        while time.monotonic() < end:
            hashlib.sha256(b"x" * (1 << 20)).digest()
            autotune.report(samples=1)
    assert tuner.returncode == 0, tuner.returncode
    assert "AUTOTUNE_PROGRESS" not in os.environ
    print("trained")
    """
)


def test_tuning_context_manager(
    tmp_path: Path, constant_policy: Callable[..., Path], isolated: dict[str, str]
) -> None:
    pol = constant_policy(weight_trainer=2.0)
    env = {**isolated, "AUTOTUNE_GUARD_WARMUP_S": "1"}
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(pol)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "trained"
    assert "weight.trainer trainer 1 → 2" in r.stderr  # the tuner acted on this process
    assert "autotune: tuned" in r.stderr  # and ended the orderly way, restoring


def test_tuning_reports_a_bad_model(tmp_path: Path, isolated: dict[str, str]) -> None:
    code = "import autotune\nwith autotune.tuning(model='/no/such'):\n    pass"
    r = subprocess.run(
        [sys.executable, "-c", code], env=isolated, capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0
    assert "the tuner did not start" in r.stderr
