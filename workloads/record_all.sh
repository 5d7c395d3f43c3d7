#!/usr/bin/env bash
# Regenerate the bundled recordings, envs/workloads/<name>.parquet, on this machine (as root):
# `autotune record --explore` around each of the five workloads, through the harness (own loop
# device, cold cache, neighbour for cnn_noisy, everything restored). Takes about ten minutes.
# Flags go to `python -m workloads.record_all` (--only, --out, --hold, --size).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m workloads.record_all "$@"
