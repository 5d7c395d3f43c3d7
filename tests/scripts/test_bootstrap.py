"""scripts/bootstrap.sh on a node where nothing of it was done yet, for real.

CI's machine is not fresh (earlier runs left the kernel-header links, the venv and bcc's link in
it), so these tests make it fresh where it matters: the real script runs on a copy of the working
tree without ``.venv``, inside a private mount namespace (``unshare -m``) whose ``/lib/modules``
is an empty tmpfs. It must make the header links, build the venv, make bcc importable in it, and
a BPF program must compile through those links. Nothing outside the namespace and the copy
changes. The OS packages stay installed: removing them would change the machine for everyone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KREL = os.uname().release

pytestmark = [pytest.mark.root, pytest.mark.slow]

needs_unshare = pytest.mark.skipif(
    shutil.which("unshare") is None, reason="unshare (util-linux) is not installed"
)


def _copy_tree(dest: Path) -> Path:
    """The working tree as git sees it (tracked and untracked, not ignored), without .venv."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, names):
        rel = raw.decode()
        src = REPO / rel
        if not src.is_file():  # deleted in the working tree
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    return dest


def _in_fresh_namespace(script: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``script`` (bash) where /lib/modules is an empty tmpfs; returns its output."""
    wrapped = f"set -euo pipefail; mount -t tmpfs tmpfs /lib/modules; {script}"
    r = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", wrapped],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1700,
        env={**os.environ, **(env or {})},
    )
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


@needs_unshare
@pytest.mark.bpf
@pytest.mark.timeout(1800)  # a whole venv: ~2 min on a quiet node, much more on a busy one
def test_bootstrap_makes_a_fresh_node_ready(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path / "clone")
    venv_python = ".venv/bin/python"
    site = f"$({venv_python} -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')"
    out = _in_fresh_namespace(
        # 1. nothing there: no header links, no venv
        f"test ! -e /lib/modules/{KREL}/build; test ! -e .venv;"
        "scripts/bootstrap.sh;"
        f"echo BUILD=$(readlink /lib/modules/{KREL}/build);"
        f"echo SOURCE=$(readlink /lib/modules/{KREL}/source);"
        # 2. a BPF program compiles through the links just made (bcc reads build/ and source/)
        f"{venv_python} -c 'from autotune.telemetry.loader import load; load(\"probe\").cleanup()'"
        " && echo COMPILED;"
        # 3. bcc's link in the venv gone (a venv rebuilt by hand, say): made again
        f'rm "{site}/bcc"; scripts/bootstrap.sh;'
        f"{venv_python} -c 'import bcc' && echo BCC_AGAIN;"
        # 4. a second run checks and installs nothing
        "echo SECOND_RUN_START; scripts/bootstrap.sh; echo SECOND_RUN_END",
        cwd=tree,
    )
    lines = out.splitlines()
    build = next(x.split("=", 1)[1] for x in lines if x.startswith("BUILD="))
    source = next(x.split("=", 1)[1] for x in lines if x.startswith("SOURCE="))
    assert Path(build, "Makefile").is_file(), out
    assert Path(source).is_dir(), out
    assert "COMPILED" in lines and "BCC_AGAIN" in lines, out
    second = out[out.index("SECOND_RUN_START") : out.index("SECOND_RUN_END")]
    assert "installing" not in second and "pip install" not in second, second
    # The copy has its own venv; the namespace's links never reached the real /lib/modules.
    assert (tree / ".venv" / "bin" / "autotune").exists()


def test_a_failing_install_says_what_failed_in_one_line(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path / "clone")
    r = subprocess.run(
        ["scripts/bootstrap.sh"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "AUTOTUNE_APT_EXTRA": "autotune-no-such-package"},
    )
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("bootstrap: failed: apt-get"), r.stderr
    # apt's own words come before it, so the person sees why
    assert "autotune-no-such-package" in r.stderr
    assert not (tree / ".venv").exists()
