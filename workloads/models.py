"""The small CNN the image and phase jobs train (CPU-sized: a few ms per batch of 32)."""

from __future__ import annotations

from typing import Any


def small_cnn(in_channels: int, classes: int) -> Any:
    """Three conv blocks and a linear head, for small images (32 to 64 pixels a side)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, classes),
    )


def train_step(model: Any, opt: Any, x: Any, y: Any) -> float:
    """One SGD step on a batch; returns the loss."""
    from torch.nn import functional

    opt.zero_grad(set_to_none=True)
    loss = functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())
