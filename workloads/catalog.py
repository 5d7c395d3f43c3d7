"""The workloads by name: which job, which data, beside a neighbour or not, and tiny settings."""

from __future__ import annotations

from dataclasses import dataclass

from autotune.errors import UserError

NEIGHBOUR_KINDS = ("on", "off")  # OnOffNeighbour's spells: its hogs run, then none do


@dataclass(frozen=True)
class Workload:
    """One bundled workload.

    Attributes:
        name: its name (also the recording's file name).
        module: the job, run as ``python -m <module>``.
        dataset: the make_data dataset it reads.
        noisy: run beside the noisy neighbour by default.
        tiny_args: job flags for the tiny data (tests).
        stresses: what it stresses, one line.
        knob: the knob that should matter, and why, one line.
        more_data: further make_data datasets it reads.
        spell_kinds: the kinds of spell it alternates, first first (empty: no spells); the
            neighbour's (``on``/``off``) when ``noisy``, else the job's own, announced on stdout.
        recorded: bundled as a recording (envs/workloads) and trained on; False for a job kept
            unseen, to measure what a trained policy does on a job it never met.
    """

    name: str
    module: str
    dataset: str
    noisy: bool
    tiny_args: tuple[str, ...]
    stresses: str
    knob: str
    more_data: tuple[str, ...] = ()
    spell_kinds: tuple[str, ...] = ()
    recorded: bool = True

    @property
    def neighbour_spells(self) -> bool:
        """Whether its spells are a neighbour's coming and going (not the job's own)."""
        return self.noisy and self.spell_kinds == NEIGHBOUR_KINDS

    @property
    def datasets(self) -> tuple[str, ...]:
        """Every dataset the job reads."""
        return (self.dataset, *self.more_data)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "cnn",
            "workloads.cnn",
            "images",
            False,
            ("--batch-size", "8"),
            "CPU: JPEG decoding in 2 DataLoader workers and CNN training share the cores",
            "weights / cpus (who gets the cores); prefetch.loader; readahead hardly (small files)",
        ),
        Workload(
            "cnn_noisy",
            "workloads.cnn",
            "images",
            True,
            ("--batch-size", "8"),
            "the same job beside stress-ng --cpu 2",
            "weight.trainer / weight.loader: 8× cpu.shares wins the cores back",
        ),
        Workload(
            "shards",
            "workloads.shards",
            "shards",
            False,
            ("--batch-size", "4"),
            "sequential 10 KiB reads of 32 MiB tar shards, light work per byte",
            "readahead: small windows turn one stream into many small I/Os",
        ),
        Workload(
            "randread",
            "workloads.randread",
            "tokens",
            False,
            ("--batch-size", "4", "--block", "256", "--evict-every", "8"),
            "random 2 KiB windows of a memory-mapped 1 GiB token array",
            "readahead, downwards: each page fault reads around read_ahead_kb",
        ),
        Workload(
            "phases",
            "workloads.phases",
            "shards",
            False,
            ("--batch-size", "4", "--load-shards", "1"),
            "cold shard loading, then CNN epochs on what was loaded, repeating",
            "readahead in the load phase, weights/cpus in the compute phase",
        ),
        Workload(
            "neighbour_onoff",
            "workloads.randread",
            "tokens",
            True,
            ("--batch-size", "4", "--block", "256", "--evict-every", "8"),
            "random memory-mapped reads beside stress-ng --cpu 2 that comes and goes "
            "(seeded spells of 10-40 s)",
            "weights: above 1x while the neighbour runs, at or below 1x while it is away",
            spell_kinds=NEIGHBOUR_KINDS,
        ),
        Workload(
            "mixed_io",
            "workloads.mixed_io",
            "shards",
            False,
            (
                "--batch-size",
                "4",
                "--seq-batch",
                "4",
                "--block",
                "256",
                "--evict-every",
                "8",
                "--spell-s",
                "0.01,0.02",
            ),
            "spells of sequential shard streaming, then random windows of a token file "
            "(seeded, 10-40 s each)",
            "readahead: large in the sequential spells, small in the random ones",
            more_data=("tokens",),
            spell_kinds=("seq", "random"),
        ),
        Workload(
            "tinylm",
            "workloads.tinylm",
            "tokens",
            True,
            ("--batch-size", "4", "--block", "32", "--read-kb", "4"),
            "a 2-layer transformer LM (d=64) on token windows streamed in order by 2 DataLoader "
            "workers, beside stress-ng --cpu 2; never recorded, never trained on",
            "weight.trainer / weight.loader (the trainer's CPU against the hogs); readahead a "
            "little (sequential 16 KiB reads, cold)",
            recorded=False,
        ),
    )
}
RECORDED = tuple(name for name, w in WORKLOADS.items() if w.recorded)


def get(name: str) -> Workload:
    """A workload by name; an unknown name is a UserError listing the known ones."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UserError(
            f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}"
        ) from None
