"""Random access into a large memory-mapped token array, where big read-ahead hurts.

Each sample is a window of 1024+1 uint16 tokens at a random offset of ``tokens/tokens.bin``,
read through ``np.memmap`` in a DataLoader worker, the way nanoGPT-style loaders read a tokenized
corpus. A page fault on a file mapping reads around the faulting page as much as the device's
``read_ahead_kb`` (8 MiB on this VM's disk) — for a 2 KiB sample. ``--access pread`` reads the
same windows with ``pread`` instead, which the kernel limits to the pages asked for.

The page cache here would soon hold the whole file; a real corpus is many times larger than
memory. So each worker unmaps the file and drops its cache every ``--evict-every`` samples
(unless ``--keep-cache``), keeping the accesses about as cold as on a real corpus.

    python -m workloads.randread --data-dir DIR [--samples N] [--access mmap|pread]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import autotune.client as at
from autotune.errors import UserError
from workloads import jobkit
from workloads.models import train_step

BUCKETS = 1024  # the toy model predicts the next token modulo this


class TokenWindows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Windows of ``block + 1`` tokens at random offsets (fixed by the seed) in a token file."""

    def __init__(self, path: Path, block: int, access: str, evict_every: int, seed: int) -> None:
        self.path = path
        self.block = block
        self.access = access
        self.evict_every = evict_every
        n_tokens = path.stat().st_size // 2
        if n_tokens <= block + 1:
            raise UserError(f"{path} holds {n_tokens} tokens, fewer than one window")
        rng = np.random.default_rng([seed, 4])
        self.offsets = rng.integers(0, n_tokens - block - 1, n_tokens // block)
        self._map: np.memmap | None = None
        self._fd: int | None = None
        self._reads = 0

    def __len__(self) -> int:
        return len(self.offsets)

    def _window(self, offset: int) -> np.ndarray:
        n = self.block + 1
        if self.access == "pread":
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            return np.frombuffer(os.pread(self._fd, 2 * n, 2 * offset), dtype=np.uint16)
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint16, mode="r")
        return np.array(self._map[offset : offset + n])

    def _cool(self) -> None:
        # Mapped pages cannot be evicted: unmap first, then drop the file's cache.
        self._map = None
        jobkit.evict(self.path)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._reads += 1
        if self.evict_every and self._reads % self.evict_every == 0:
            self._cool()
        w = torch.from_numpy(self._window(int(self.offsets[i])).astype(np.int64))
        return w[:-1], w[1:]


def main(argv: list[str] | None = None) -> None:
    p = jobkit.parser("randread", __doc__.splitlines()[0], samples=3072, batch=32)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--block", type=int, default=1024, help="tokens per sample")
    p.add_argument("--access", choices=("mmap", "pread"), default="mmap")
    p.add_argument("--evict-every", type=int, default=64, help="samples per worker (0: never)")
    p.add_argument(
        "--seconds", type=float, default=0.0, help="also stop after this long training (0: never)"
    )
    args = p.parse_args(argv)
    jobkit.check(args)
    if args.workers < 1 or args.block < 1 or args.evict_every < 0 or args.seconds < 0:
        raise UserError(
            "--workers and --block must be at least 1, --evict-every and --seconds 0 or more"
        )
    path = jobkit.dataset(args, "tokens") / "tokens.bin"

    jobkit.setup_torch(args)
    evict_every = 0 if args.keep_cache else args.evict_every
    data = TokenWindows(path, args.block, args.access, evict_every, args.seed)
    model = nn.Sequential(nn.EmbeddingBag(BUCKETS, 64), nn.Linear(64, BUCKETS))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(
        data,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        persistent_workers=True,
        generator=torch.Generator().manual_seed(args.seed),
    )
    meter = jobkit.Meter(args.samples, args.seconds)
    while not meter.done:
        for x, y in at.count_batches(loader):
            train_step(model, opt, x % BUCKETS, y[:, -1] % BUCKETS)
            if meter.add(len(x)):
                break
    jobkit.emit(meter.result("randread", access=args.access, workers=args.workers))


if __name__ == "__main__":
    sys.exit(jobkit.entry(main))
