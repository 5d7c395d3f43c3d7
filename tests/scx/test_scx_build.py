"""scx/build.sh: the scheduler built against a target kernel's BTF, the kfunc generation chosen
from that BTF, and a clear refusal for a kernel without sched_ext.

Only the 6.13+ generation can be loaded and run here (in the VM: test_scx_vm.py): Debian's 6.12
kernels lack sched_ext. The 6.12 generation is compiled against the same vmlinux.h, to prove it
builds and calls the 6.12 kfuncs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from autotune.system import kernel

REPO = Path(__file__).resolve().parents[2]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    fetched = _run(str(REPO / "scx" / "fetch.sh"), "kernel")
    if fetched.returncode != 0:
        pytest.skip(f"the sched_ext kernel cannot be downloaded here: {fetched.stderr.strip()}")
    out = tmp_path_factory.mktemp("scx-build")
    vmlinuz = Path(fetched.stdout.strip()) / "vmlinuz"
    r = _run(str(REPO / "scx" / "build.sh"), "--vmlinuz", str(vmlinuz), "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


def _undefined(obj: Path) -> set[str]:
    """Undefined symbols of a BPF object: the kfuncs it calls."""
    out = _run("readelf", "-sW", str(obj)).stdout
    return {f.split()[-1] for f in out.splitlines() if " UND " in f and f.split()[-1] != "UND"}


def test_6_18_gets_the_6_13_kfuncs(built: Path) -> None:
    env = dict(
        line.split("=", 1) for line in (built / "build.env").read_text().splitlines() if "=" in line
    )
    assert env["AUTOTUNE_DSQ_INSERT"] == "1"
    calls = _undefined(built / "scx_autotune.bpf.o")
    assert {"scx_bpf_dsq_insert_vtime", "scx_bpf_dsq_move_to_local"} <= calls
    assert not calls & {"scx_bpf_dispatch_vtime", "scx_bpf_consume"}
    assert (built / "scx-autotune").stat().st_mode & 0o111


def test_the_6_12_generation_builds_with_the_6_12_kfuncs(built: Path, tmp_path: Path) -> None:
    tools = Path(_run(str(REPO / "scx" / "fetch.sh"), "tools").stdout.strip())
    obj = tmp_path / "scx_612.bpf.o"
    r = _run(
        "clang", "-O2", "-g", "-target", "bpf", "-DAUTOTUNE_DSQ_INSERT=0",
        f"-I{built}", f"-I{tools / 'usr' / 'include'}", f"-I{REPO / 'bpf'}",
        "-c", str(REPO / "bpf" / "scx_autotune.bpf.c"), "-o", str(obj),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    calls = _undefined(obj)
    assert {"scx_bpf_dispatch_vtime", "scx_bpf_consume"} <= calls
    assert not calls & {"scx_bpf_dsq_insert_vtime", "scx_bpf_dsq_move_to_local"}


@pytest.mark.skipif(not kernel.has_btf(), reason="this kernel exposes no BTF")
@pytest.mark.skipif(kernel.sched_ext().supported, reason="this kernel has sched_ext")
def test_a_kernel_without_sched_ext_is_refused_clearly(tmp_path: Path) -> None:
    r = _run(
        str(REPO / "scx" / "build.sh"), "--btf", str(kernel.BTF_VMLINUX), "--out", str(tmp_path)
    )
    if "scx/fetch" in r.stderr and r.returncode != 0 and "no sched_ext" not in r.stderr:
        pytest.skip(f"bpftool cannot be downloaded here: {r.stderr.strip()}")
    assert r.returncode == 2
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .endswith("the target kernel has no sched_ext (no struct sched_ext_ops in its BTF)")
    )
    assert not (tmp_path / "scx_autotune.bpf.o").exists()
