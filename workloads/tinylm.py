"""A tiny transformer language model trained on a token file streamed by DataLoader workers.

Written for the online bench (issue 20) as a job nobody recorded nor trained a policy on: a
2-layer, 64-wide causal transformer (4 heads) predicts the next token of windows of
``--block`` + 1 tokens (``tokens % --vocab``). Each DataLoader worker streams its own part of
``tokens/tokens.bin`` start to end in ``--read-kb`` ``read()`` calls (the way a pre-tokenized
corpus is read in order) and drops each span from the page cache once it is past (unless
``--keep-cache``), so every read is cold as on a corpus larger than memory. The trainer's forward
and backward passes are most of the CPU; the reads are sequential, so read-ahead can hide them.

    python -m workloads.tinylm --data-dir DIR [--samples N] [--workers 2] [--block 64]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import autotune.client as at
from autotune.errors import UserError
from workloads import jobkit
from workloads.models import train_step

EVICT_BYTES = 4 << 20  # drop what was read behind the reader every 4 MiB


class TokenStream(IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    """Windows of ``block + 1`` tokens, one after another, each worker over its own part."""

    def __init__(self, path: Path, block: int, read_bytes: int, vocab: int, evict: bool) -> None:
        super().__init__()
        self.path = path
        self.block = block
        self.read_bytes = read_bytes
        self.vocab = vocab
        self.evict = evict
        self.size = path.stat().st_size
        if self.size // 2 <= 2 * (block + 1):
            raise UserError(f"{path} holds {self.size // 2} tokens, too few for --block {block}")

    def _span(self) -> tuple[int, int]:
        info = get_worker_info()
        n, k = (info.num_workers, info.id) if info else (1, 0)
        part = (self.size // n) & ~1
        return k * part, (k + 1) * part if k < n - 1 else self.size & ~1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start, stop = self._span()
        want = 2 * (self.block + 1)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            while True:  # endless: the trainer stops at its sample count
                pos, dropped, buf = start, start, b""
                while pos < stop:
                    chunk = os.pread(fd, min(self.read_bytes, stop - pos), pos)
                    if not chunk:
                        break
                    pos += len(chunk)
                    buf += chunk
                    used = 0
                    while len(buf) - used >= want:
                        w = np.frombuffer(buf, np.uint16, want // 2, used).astype(np.int64)
                        used += want - 2  # the next window starts at this one's last token
                        t = torch.from_numpy(w % self.vocab)
                        yield t[:-1], t[1:]
                    buf = buf[used:]
                    if self.evict and pos - dropped >= EVICT_BYTES:
                        os.posix_fadvise(fd, dropped, pos - dropped, os.POSIX_FADV_DONTNEED)
                        dropped = pos
                if self.evict:
                    os.posix_fadvise(fd, start, stop - start, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class TinyLM(nn.Module):
    """Token and position embeddings, ``layers`` causal pre-norm transformer blocks, a head."""

    def __init__(self, vocab: int, block: int, d: int = 64, layers: int = 2, heads: int = 4):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(block, d)
        layer = nn.TransformerEncoderLayer(
            d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(n, device=x.device))
        h = self.blocks(h, mask=self.mask[:n, :n], is_causal=True)
        return torch.Tensor(self.head(self.norm(h)))


class _Flat(nn.Module):
    """The LM's logits and targets flattened, as ``train_step``'s cross-entropy takes them."""

    def __init__(self, lm: TinyLM) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.lm(x)
        return logits.reshape(-1, logits.shape[-1])


def main(argv: list[str] | None = None) -> None:
    p = jobkit.parser("tinylm", __doc__.splitlines()[0], samples=2048, batch=16)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--block", type=int, default=64, help="context length, tokens")
    p.add_argument("--vocab", type=int, default=2048, help="tokens are taken modulo this")
    p.add_argument("--read-kb", type=int, default=16, help="size of each read(), KiB")
    args = p.parse_args(argv)
    jobkit.check(args)
    if min(args.workers, args.block, args.read_kb) < 1 or args.vocab < 2:
        raise UserError("--workers, --block and --read-kb must be at least 1, --vocab 2")
    path = jobkit.dataset(args, "tokens") / "tokens.bin"

    jobkit.setup_torch(args)
    stream = TokenStream(path, args.block, args.read_kb << 10, args.vocab, not args.keep_cache)
    model = _Flat(TinyLM(args.vocab, args.block))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loader = DataLoader(stream, batch_size=args.batch_size, num_workers=args.workers)
    meter = jobkit.Meter(args.samples)
    loss = float("nan")
    for x, y in at.count_batches(loader):
        loss = train_step(model, opt, x, y.reshape(-1))
        if meter.add(len(x)):
            break
    jobkit.emit(meter.result("tinylm", loss=round(loss, 4), workers=args.workers))


if __name__ == "__main__":
    sys.exit(jobkit.entry(main))
