"""The workloads' data disk: a direct-I/O loop device of its own, always removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.errors import UserError
from autotune.system.blockdev import SYS_BLOCK, disk_of_path
from workloads import disk

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("nothing_left")]


def _read_all(path: Path) -> None:
    with path.open("rb", buffering=0) as f:
        while f.read(1 << 16):
            pass


def test_disk_is_a_mounted_direct_io_loop_device_and_goes_away(tmp_path: Path) -> None:
    with disk.DataDisk(64) as d:
        assert (SYS_BLOCK / d.dev / "loop" / "dio").read_text().strip() == "1"
        assert disk_of_path(d.mnt) == d.dev
        (d.mnt / "x").write_bytes(b"data")
        made = (d.dev, d.workdir)
    assert not (SYS_BLOCK / made[0] / "loop" / "backing_file").exists()
    assert made[1] is not None and not made[1].exists()


def test_disk_is_removed_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), disk.DataDisk(64) as d:
        workdir = d.workdir
        raise RuntimeError("a job failed")
    assert workdir is not None and not workdir.exists()
    assert d.device is None


def test_direct_io_keeps_reads_out_of_the_root_disks_page_cache() -> None:
    """With --direct-io=on nothing of the backing file is cached (so vda's 8 MiB read-ahead
    never applies); with it off, reading through the loop device fills the backing file's
    cache on the root disk. Both halves run, so the check is known to be able to fail."""
    with disk.DataDisk(64) as d:
        data = d.mnt / "big.bin"
        data.write_bytes(os.urandom(8 << 20))
        assert d.backing is not None
        cached = {}
        for dio in ("on", "off"):
            subprocess.run(["losetup", f"--direct-io={dio}", f"/dev/{d.dev}"], check=True)
            disk.drop_cache(d.mnt, d.dev)
            disk.drop_cache(d.backing.parent)
            _read_all(data)
            cached[dio] = disk.cached_pages(d.backing)
    assert cached["on"] == 0
    assert cached["off"] >= (8 << 20) // 4096


def test_drop_cache_makes_the_data_cold() -> None:
    with disk.DataDisk(64) as d:
        f = d.mnt / "f.bin"
        f.write_bytes(os.urandom(1 << 20))
        _read_all(f)
        assert disk.cached_pages(f) > 0
        assert disk.drop_cache(d.mnt, d.dev) == 1
        assert disk.cached_pages(f) == 0


def test_read_ahead_is_set_only_on_loop_devices() -> None:
    root = disk_of_path("/")
    assert root is not None and not root.startswith("loop")
    before = disk.read_ahead_kb(root)
    with pytest.raises(UserError, match="only our loop devices"):
        disk.set_read_ahead_kb(root, 16)
    assert disk.read_ahead_kb(root) == before
    with disk.DataDisk(64) as d:
        disk.set_read_ahead_kb(d.dev, 16)
        assert disk.read_ahead_kb(d.dev) == 16
        assert disk.loop_device_of(d.mnt) == d.dev
    with pytest.raises(UserError, match="not a loop device"):
        disk.loop_device_of(Path("/var/tmp"))


def test_a_killed_runs_disk_is_removed_by_the_next_run(capfd: pytest.CaptureFixture[str]) -> None:
    # A run killed with SIGKILL cannot clean up: it leaves its loop device mounted.
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "from workloads import disk; d = disk.DataDisk(64).open(); "
            "print(d.dev, d.workdir, flush=True); import os; os.kill(os.getpid(), 9)",
        ],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
    )
    dev, workdir = made.stdout.split()
    assert (SYS_BLOCK / dev / "loop" / "backing_file").exists()
    assert Path(workdir).is_dir() and disk.leftovers()
    capfd.readouterr()
    with disk.DataDisk(64):
        backing = SYS_BLOCK / dev / "loop" / "backing_file"
        assert not backing.exists() or not backing.read_text().startswith(workdir)
        assert not Path(workdir).exists()
    assert f"removed mount {workdir}/mnt" in capfd.readouterr().err
