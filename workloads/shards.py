"""Streaming large tar shards (WebDataset style): sequential reads, light per-sample work.

DataLoader workers each stream their share of the shards start to end in 10 KiB reads; a sample
is a 256 KiB payload turned into a 64×64 image, and the trainer takes one step of a linear
classifier per batch. The CPU work per byte is small, so read-ahead sets the pace. Each shard's
cache is dropped after it is read unless ``--keep-cache`` (a corpus larger than memory).

    python -m workloads.shards --data-dir DIR [--samples N] [--workers 2]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import autotune.client as at
from autotune.errors import UserError
from workloads import jobkit, shardio
from workloads.models import train_step

SIDE = 64  # the linear model's input is a 64×64 view of the payload


class ShardStream(IterableDataset[tuple[torch.Tensor, int]]):
    """An endless stream of (image, label) over the shards, split between DataLoader workers."""

    def __init__(self, shards: list[Path], evict: bool) -> None:
        super().__init__()
        self.shards = shards
        self.evict = evict

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = get_worker_info()
        mine = self.shards[info.id :: info.num_workers] if info else self.shards
        while mine:
            for shard in mine:
                for payload, label in shardio.samples(shard):
                    yield torch.from_numpy(shardio.decode(payload, SIDE)), label
                if self.evict:
                    jobkit.evict(shard)


def main(argv: list[str] | None = None) -> None:
    p = jobkit.parser("shards", __doc__.splitlines()[0], samples=6144, batch=64)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    args = p.parse_args(argv)
    jobkit.check(args)
    shards = shardio.shard_files(jobkit.dataset(args, "shards"))
    if not 1 <= args.workers <= len(shards):
        raise UserError(f"--workers must be 1 to {len(shards)} (one shard each at least)")

    jobkit.setup_torch(args)
    stream = ShardStream(shards, evict=not args.keep_cache)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = DataLoader(stream, batch_size=args.batch_size, num_workers=args.workers)
    meter = jobkit.Meter(args.samples)
    for x, y in at.count_batches(loader):
        train_step(model, opt, x, y)
        if meter.add(len(x)):
            break
    mib = meter.samples * shardio.PAYLOAD_SIDE**2 / 2**20
    jobkit.emit(meter.result("shards", mib_read=round(mib, 1), workers=args.workers))


if __name__ == "__main__":
    sys.exit(jobkit.entry(main))
