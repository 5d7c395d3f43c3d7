"""Generate the workloads' data, deterministically from a seed.

Three datasets, each generated only when a workload needs it:

* ``images/class_<c>/<i>.jpg``: JPEG photos-to-be (256×256, ≈37 KB each), a class pattern plus
  noise so that a CNN has something to learn and a decoder real work to do (cnn);
* ``shards/shard-<k>.tar``: WebDataset-style tar shards of ``<key>.bin`` (256 KiB payload) and
  ``<key>.cls`` (label) members, read start to end (shards, phases);
* ``tokens/tokens.bin``: a flat uint16 token array, read at random offsets through a memory map,
  the way nanoGPT-style loaders read a tokenized corpus (mmap).

A ``manifest.json`` per dataset, written last (temp file, fsync, rename), says what was made;
a dataset whose manifest matches the request is not made again.

Usage: ``python -m workloads.make_data DIR [--size tiny|default] [--only images,shards]``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from autotune.errors import UserError

IMAGE_SIDE = 256
CLASSES = 10
SHARD_SAMPLE_BYTES = 256 << 10  # a 512×512 byte image
TOKEN_CHUNK = 4 << 20  # bytes of tokens generated at a time


@dataclass(frozen=True)
class Sizes:
    """How much of each dataset to make."""

    images: int
    shards: int
    shard_mib: int
    tokens_mib: int


SIZES: dict[str, Sizes] = {
    # Cold-cache runs of tens of seconds at the defaults, I/O a real part of each.
    "default": Sizes(images=4096, shards=8, shard_mib=32, tokens_mib=1024),
    # For tests: a second or two to make, enough for a handful of batches.
    "tiny": Sizes(images=96, shards=4, shard_mib=1, tokens_mib=16),
}
DATASETS = ("images", "shards", "tokens")


def _image(rng: np.random.Generator, label: int) -> bytes:
    yy, xx = np.mgrid[0:IMAGE_SIDE, 0:IMAGE_SIDE].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    base = np.sin(xx / (3 + label) + phase) * np.cos(yy / (5 + label)) * 100 + 128
    img = np.stack([base, np.roll(base, label * 5, 0), 255 - base], -1)
    img += rng.normal(0, 20, img.shape).astype(np.float32)
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write_images(out: Path, seed: int, first: int, stop: int) -> None:
    for i in range(first, stop):
        rng = np.random.default_rng([seed, 1, i])  # one stream per file: order-independent
        label = int(rng.integers(CLASSES))
        (out / f"class_{label}" / f"{i:06d}.jpg").write_bytes(_image(rng, label))


def make_images(out: Path, sizes: Sizes, seed: int) -> dict[str, int]:
    for c in range(CLASSES):
        (out / f"class_{c}").mkdir(parents=True, exist_ok=True)
    # JPEG encoding is the slow part (≈5 ms an image): spread it over the CPUs.
    procs = max(1, min(os.cpu_count() or 1, 8))
    step = -(-sizes.images // procs)
    with ProcessPoolExecutor(procs) as pool:
        jobs = [
            pool.submit(_write_images, out, seed, a, min(a + step, sizes.images))
            for a in range(0, sizes.images, step)
        ]
        for job in jobs:
            job.result()
    return {"files": sizes.images, "classes": CLASSES}


def make_shards(out: Path, sizes: Sizes, seed: int) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    per_shard = max(1, (sizes.shard_mib << 20) // SHARD_SAMPLE_BYTES)
    for k in range(sizes.shards):
        rng = np.random.default_rng([seed, 2, k])
        payload = rng.bytes(per_shard * SHARD_SAMPLE_BYTES)
        labels = rng.integers(CLASSES, size=per_shard)
        with tarfile.open(out / f"shard-{k:06d}.tar", "w") as tar:
            for j in range(per_shard):
                key = f"{k * per_shard + j:08d}"
                body = payload[j * SHARD_SAMPLE_BYTES : (j + 1) * SHARD_SAMPLE_BYTES]
                _add(tar, f"{key}.bin", body)
                _add(tar, f"{key}.cls", str(int(labels[j])).encode())
    return {"shards": sizes.shards, "samples_per_shard": per_shard}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # same seed, same bytes
    tar.addfile(info, io.BytesIO(data))


def make_tokens(out: Path, sizes: Sizes, seed: int) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    total = sizes.tokens_mib << 20
    rng = np.random.default_rng([seed, 3])
    # One random chunk, varied per position: content does not matter to the page cache, and
    # drawing a GiB of random numbers would take most of a minute.
    chunk = rng.integers(0, 50_000, TOKEN_CHUNK // 2, dtype=np.uint16)
    with (out / "tokens.bin").open("wb") as f:
        for n, _ in enumerate(range(0, total, TOKEN_CHUNK)):
            f.write((chunk ^ np.uint16(n & 0x7FFF)).tobytes())
    return {"tokens": total // 2, "dtype_bytes": 2}


MAKERS: dict[str, Callable[[Path, Sizes, int], dict[str, int]]] = {
    "images": make_images,
    "shards": make_shards,
    "tokens": make_tokens,
}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.rename(path)


def manifest(root: Path, dataset: str) -> dict[str, object] | None:
    """A dataset's manifest, or None when it was never completed."""
    try:
        return dict(json.loads((root / dataset / "manifest.json").read_text()))
    except (OSError, ValueError):
        return None


def make(
    root: Path, size: str = "default", seed: int = 0, only: tuple[str, ...] = DATASETS
) -> None:
    """Make the datasets ``only`` under ``root`` (skipping those already made alike).

    Raises:
        UserError: an unknown size or dataset name.
    """
    if size not in SIZES:
        raise UserError(f"unknown data size {size!r}; choose one of {', '.join(SIZES)}")
    for name in only:
        if name not in MAKERS:
            raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    sizes = SIZES[size]
    for name in only:
        want = {"size": size, "seed": seed, "sizes": asdict(sizes)}
        have = manifest(root, name)
        if have is not None and all(have.get(k) == v for k, v in want.items()):
            continue
        t = time.monotonic()
        facts = MAKERS[name](root / name, sizes, seed)
        _write_atomic(root / name / "manifest.json", json.dumps({**want, **facts}, indent=1))
        print(f"make_data: {name} ({size}) in {time.monotonic() - t:.1f} s", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path, help="directory to make the datasets in")
    p.add_argument("--size", default="default", choices=sorted(SIZES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default=",".join(DATASETS), help="comma-separated datasets")
    args = p.parse_args(argv)
    try:
        make(args.root, args.size, args.seed, tuple(s for s in args.only.split(",") if s))
    except UserError as e:
        print(f"make_data: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
