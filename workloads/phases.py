"""A job that changes phase: I/O-heavy loading, then compute-heavy epochs, repeating.

Each cycle loads the next ``--load-shards`` tar shards into memory (sequential 10 KiB reads,
light decoding, no progress reported: a trainer waiting for data), then trains the small CNN
on them for ``--epochs`` epochs (all CPU, progress reported per batch). A shard's cache is dropped
once it is loaded unless ``--keep-cache``, so every load is cold, as with a corpus larger than
memory. The knob that helps one phase (read-ahead while loading) does nothing for the other.

    python -m workloads.phases --data-dir DIR [--samples N] [--epochs E]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import autotune.client as at
from autotune.errors import UserError
from workloads import jobkit, shardio
from workloads.models import small_cnn, train_step

SIDE = 32  # the CNN trains on 32×32 views: a compute phase of seconds, not minutes


def load(shards: list[Path], evict: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read shards start to end into (images, labels) tensors."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    for shard in shards:
        for payload, label in shardio.samples(shard):
            images.append(shardio.decode(payload, SIDE))
            labels.append(label)
        if evict:
            jobkit.evict(shard)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels)


def main(argv: list[str] | None = None) -> None:
    p = jobkit.parser("phases", __doc__.splitlines()[0], samples=4096, batch=64)
    p.add_argument("--load-shards", type=int, default=4, help="shards loaded per cycle")
    p.add_argument("--epochs", type=int, default=2, help="epochs over each load")
    args = p.parse_args(argv)
    jobkit.check(args)
    shards = shardio.shard_files(jobkit.dataset(args, "shards"))
    if not 1 <= args.load_shards <= len(shards) or args.epochs < 1:
        raise UserError(f"--load-shards must be 1 to {len(shards)}, --epochs at least 1")

    jobkit.setup_torch(args)
    model = small_cnn(1, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(args.seed)
    meter = jobkit.Meter(args.samples)
    load_s = compute_s = 0.0
    cycles = 0
    while not meter.done:
        t = time.monotonic()
        first = cycles * args.load_shards
        pick = [shards[(first + i) % len(shards)] for i in range(args.load_shards)]
        x_all, y_all = load(pick, evict=not args.keep_cache)
        t2 = time.monotonic()
        load_s += t2 - t
        cycles += 1
        batches = DataLoader(
            TensorDataset(x_all, y_all), batch_size=args.batch_size, shuffle=True, generator=gen
        )
        for _ in range(args.epochs):
            for x, y in at.count_batches(batches):
                train_step(model, opt, x, y)
                if meter.add(len(x)):
                    break
            if meter.done:
                break
        compute_s += time.monotonic() - t2
    jobkit.emit(
        meter.result(
            "phases", cycles=cycles, load_s=round(load_s, 3), compute_s=round(compute_s, 3)
        )
    )


if __name__ == "__main__":
    sys.exit(jobkit.entry(main))
