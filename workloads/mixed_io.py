"""A job whose reads alternate: sequential shard streaming, then random windows, in spells.

Spells alternate between ``seq`` (DataLoader workers stream the tar shards start to end in
10 KiB reads, a tar stream's record size, each 256 KiB a sample; unlike :mod:`workloads.shards`
they skip parsing the tar headers, so little CPU is spent per byte and the read-ahead sets the
pace: a large one keeps the disk ahead) and
``random`` (2 KiB windows at random offsets of the memory-mapped token file, as
:mod:`workloads.randread`: every page fault reads around the faulting page as much as the
read-ahead, so a small one wastes least). Each spell lasts a seeded 10-40 s at the reference
rates below (what each kind reads at read-ahead 128 KiB here), counted in samples, so the same
seed gives the same spells whatever the knobs; the best read-ahead changes at every boundary.

Each spell is announced on stdout (:func:`workloads.spells.announce`) before its DataLoader
starts, its data is evicted when it ends (every spell starts cold), and the result line lists
each spell's kind, samples and seconds.

    python -m workloads.mixed_io --data-dir DIR [--samples N] [--spell-s 10,40] [--seed 0]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

import autotune.client as at
from autotune.errors import UserError
from workloads import jobkit, shardio, spells
from workloads.models import train_step
from workloads.randread import BUCKETS, TokenWindows
from workloads.shards import SIDE

KINDS = ("seq", "random")
# Samples per second of each kind at the default knobs (read-ahead 128 KiB) on this project's
# VM, quiet (2 CPUs; 2026-12-06, 3 runs of bench.online's spells: seq 3178-3266, random
# 3588-3744): turns a spell's seconds into samples, so the spells' work is fixed and only their
# time depends on the knobs. Until then they were 1100 and 1200, measured at 8x weights under a
# load average of 12-14 from other engineers' work, and a "4-8 s" spell lasted 1.5-2.5 s here.
REFERENCE_RATE = {"seq": 3250.0, "random": 3650.0}
SPELL_S = (10.0, 40.0)
RECORD = 10240  # bytes per read(): tarfile's stream record (20 blocks of 512)
PAYLOAD = shardio.PAYLOAD_SIDE**2


class ShardBytes(IterableDataset[tuple[torch.Tensor, int]]):
    """Each DataLoader worker streams its share of the shards, start to end, in 10 KiB reads;
    every 256 KiB read is one sample (a 64x64 view of it, labelled by its first byte)."""

    def __init__(self, shards: list[Path], evict: bool) -> None:
        super().__init__()
        self.shards = shards
        self.evict = evict

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = get_worker_info()
        mine = self.shards[info.id :: info.num_workers] if info else self.shards
        while mine:
            for shard in mine:
                with shard.open("rb", buffering=0) as f:
                    buf = bytearray()
                    while chunk := f.read(RECORD):
                        buf += chunk
                        if len(buf) >= PAYLOAD:
                            payload = bytes(buf[:PAYLOAD])
                            del buf[:PAYLOAD]
                            yield torch.from_numpy(shardio.decode(payload, SIDE)), payload[0] % 10
                if self.evict:
                    jobkit.evict(shard)


def plan(total: int, seed: int, spell_s: tuple[float, float]) -> list[spells.Spell]:
    """The spells of a run of ``total`` samples: lengths in samples, the last one cut short."""
    out: list[spells.Spell] = []
    left = total
    for s in spells.schedule(seed, KINDS, *spell_s):
        n = min(left, max(1, round(s.length * REFERENCE_RATE[s.kind])))
        out.append(spells.Spell(s.index, s.kind, float(n)))
        left -= n
        if left <= 0:
            return out
    raise AssertionError("unreachable: the schedule is endless")


def _loader(kind: str, args: Any, data: Any, seed: int) -> DataLoader[Any]:
    if kind == "seq":
        return DataLoader(data, batch_size=args.seq_batch, num_workers=args.workers)
    return DataLoader(
        data,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        generator=torch.Generator().manual_seed(seed),
    )


def main(argv: list[str] | None = None) -> None:
    p = jobkit.parser("mixed_io", __doc__.splitlines()[0], samples=32768, batch=32)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--seq-batch", type=int, default=64, help="batch size of the seq spells")
    p.add_argument("--block", type=int, default=1024, help="tokens per random sample")
    p.add_argument("--evict-every", type=int, default=64, help="random samples per worker")
    p.add_argument(
        "--spell-s",
        default=f"{SPELL_S[0]:g},{SPELL_S[1]:g}",
        help="LOW,HIGH: spell lengths in seconds at the reference rates",
    )
    args = p.parse_args(argv)
    jobkit.check(args)
    try:
        low, high = (float(x) for x in args.spell_s.split(","))
    except ValueError:
        raise UserError(f"--spell-s takes LOW,HIGH in seconds, got {args.spell_s!r}") from None
    if args.workers < 1 or args.block < 1 or args.evict_every < 0 or args.seq_batch < 1:
        raise UserError("--workers, --block, --seq-batch at least 1; --evict-every 0 or more")
    shard_dir = jobkit.dataset(args, "shards")
    tokens = jobkit.dataset(args, "tokens") / "tokens.bin"
    shards = shardio.shard_files(shard_dir)
    if args.workers > len(shards):
        raise UserError(f"--workers must be 1 to {len(shards)} (one shard each at least)")
    schedule = plan(args.samples, args.seed, (low, high))

    jobkit.setup_torch(args)
    evict = not args.keep_cache
    seq_model = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 10))
    seq_opt = torch.optim.SGD(seq_model.parameters(), lr=0.01)
    tok_model = nn.Sequential(nn.EmbeddingBag(BUCKETS, 64), nn.Linear(64, BUCKETS))
    tok_opt = torch.optim.SGD(tok_model.parameters(), lr=0.1)
    meter = jobkit.Meter(args.samples)
    done: list[dict[str, Any]] = []
    for spell in schedule:
        spells.announce(spell)
        t = time.monotonic()
        want = int(spell.length)
        n = 0
        if spell.kind == "seq":
            stream: Any = ShardBytes(shards, evict=evict)
        else:
            stream = TokenWindows(
                tokens,
                args.block,
                "mmap",
                args.evict_every if evict else 0,
                args.seed + spell.index,
            )
        loader = _loader(spell.kind, args, stream, args.seed + spell.index)
        for x, y in at.count_batches(loader):
            if spell.kind == "seq":
                train_step(seq_model, seq_opt, x, y)
            else:
                train_step(tok_model, tok_opt, x % BUCKETS, y[:, -1] % BUCKETS)
            n += len(x)
            meter.add(len(x))
            if n >= want:
                break
        del loader  # its workers exit (and unmap the tokens) before the cache is dropped
        if evict:
            jobkit.evict(shard_dir if spell.kind == "seq" else tokens)
        done.append({"kind": spell.kind, "samples": n, "seconds": round(time.monotonic() - t, 3)})
    jobkit.emit(meter.result("mixed_io", spells=done, workers=args.workers))


if __name__ == "__main__":
    sys.exit(jobkit.entry(main))
