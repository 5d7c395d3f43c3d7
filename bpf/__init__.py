"""The eBPF C sources, shipped as package data (installed as ``autotune.bpf``)."""

from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent


def source_path(name: str) -> Path:
    """Return the path of ``bpf/<name>.bpf.c``."""
    return SOURCE_DIR / f"{name}.bpf.c"
