"""A real PyTorch job that integrates: a 2-worker DataLoader read through autotune.client."""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader, Dataset

import autotune.client as at


class Slow(Dataset[torch.Tensor]):
    """Samples that take a little while, so batches stay in flight."""

    def __len__(self) -> int:
        return 1_000_000

    def __getitem__(self, i: int) -> torch.Tensor:
        time.sleep(0.001)
        return torch.zeros(4)


def main() -> None:
    loader = DataLoader(Slow(), batch_size=4, num_workers=2, prefetch_factor=2)
    for _ in at.count_batches(loader):
        time.sleep(0.005)


if __name__ == "__main__":
    main()
