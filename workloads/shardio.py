"""Reading WebDataset-style tar shards: stream the members, group them into samples by key."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autotune.errors import UserError

PAYLOAD_SIDE = 512  # a 256 KiB payload is a 512×512 byte image


def samples(path: Path) -> Iterator[tuple[bytes, int]]:
    """Yield ``(payload, label)`` per sample of a shard, reading it once from start to end.

    Streaming mode (``r|``), as WebDataset reads shards: sequential reads of one record block
    (10 KiB) at a time, no seeking, so the page cache's read-ahead decides the I/O size.
    """
    pending: dict[str, dict[str, bytes]] = {}
    try:
        with path.open("rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for member in tar:
                body = tar.extractfile(member)
                if body is None:
                    continue
                key, _, ext = member.name.rpartition(".")
                parts = pending.setdefault(key, {})
                parts[ext] = body.read()
                if "bin" in parts and "cls" in parts:
                    del pending[key]
                    yield parts["bin"], int(parts["cls"])
    except (tarfile.TarError, ValueError) as e:
        raise UserError(f"{path} is not a readable shard: {e}") from e


def decode(payload: bytes, side: int) -> npt.NDArray[np.float32]:
    """A payload as a 1×side×side float image (light work: a strided view and a scale)."""
    img = np.frombuffer(payload, dtype=np.uint8).reshape(PAYLOAD_SIDE, PAYLOAD_SIDE)
    step = PAYLOAD_SIDE // side
    return (img[::step, ::step].astype(np.float32) / 255.0)[None]


def shard_files(root: Path) -> list[Path]:
    """The shards of a dataset directory, in order."""
    files = sorted(root.glob("shard-*.tar"))
    if not files:
        raise UserError(f"no shard-*.tar files in {root}")
    return files
