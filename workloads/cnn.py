"""A PyTorch CPU training job: a small CNN on JPEG files decoded by DataLoader workers.

Each sample is a file read from disk (one ``open``/``read`` of ≈37 KB), decoded by PIL and
resized to 64×64 in a worker process; the trainer runs forward and backward on batches of 32.
Progress goes through :func:`autotune.client.count_batches`, which also applies the tuner's
prefetch depth. Each epoch starts on a cold page cache unless ``--keep-cache``.

    python -m workloads.cnn --data-dir DIR [--samples N] [--workers 2] [--threads T]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import autotune.client as at
from autotune.errors import UserError
from workloads import jobkit
from workloads.models import small_cnn, train_step

SIDE = 64


class JpegFolder(Dataset[tuple[torch.Tensor, int]]):
    """``class_<c>/<i>.jpg`` files as (3×64×64 float tensor, label) samples."""

    def __init__(self, root: Path) -> None:
        self.files = sorted(root.glob("class_*/*.jpg"))
        if not self.files:
            raise UserError(f"no JPEG files under {root}")
        self.labels = [int(f.parent.name.removeprefix("class_")) for f in self.files]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as im:
            rgb = im.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return x.contiguous(), self.labels[i]


def main(argv: list[str] | None = None) -> None:
    p = jobkit.parser("cnn", __doc__.splitlines()[0], samples=4096, batch=32)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--prefetch", type=int, default=2, help="DataLoader prefetch_factor")
    args = p.parse_args(argv)
    jobkit.check(args)
    if args.workers < 1 or args.prefetch < 1:
        raise UserError("--workers and --prefetch must be at least 1")
    root = jobkit.dataset(args, "images")

    jobkit.setup_torch(args)
    data = JpegFolder(root)
    model = small_cnn(3, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(
        data,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        prefetch_factor=args.prefetch,
        persistent_workers=True,  # as multi-epoch training runs: workers live across epochs
        generator=torch.Generator().manual_seed(args.seed),
    )
    meter = jobkit.Meter(args.samples)
    epochs = 0
    loss = float("nan")
    while not meter.done:
        if epochs and not args.keep_cache:
            jobkit.evict(root)
        epochs += 1
        for x, y in at.count_batches(loader):
            loss = train_step(model, opt, x, y)
            if meter.add(len(x)):
                break
    jobkit.emit(meter.result("cnn", epochs=epochs, loss=round(loss, 4), workers=args.workers))


if __name__ == "__main__":
    sys.exit(jobkit.entry(main))
