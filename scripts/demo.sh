#!/usr/bin/env bash
# The main job (`make demo`): on a bootstrapped node, train PPO on the bundled recorded
# workloads, evaluate it against every baseline on held-out traces, print the comparison, write
# the plot and an HTML report, track all of it in MLflow, and say how to look at it.
#
# Environment: DEMO_TIMESTEPS (default 120000: a few minutes of CPU on 2 cores),
# DEMO_SEEDS (evaluation seeds, default 3), AUTOTUNE_TRACKING_URI (default runs/mlflow.db).
set -euo pipefail
cd "$(dirname "$0")/.."
AT=.venv/bin/autotune
TIMESTEPS=${DEMO_TIMESTEPS:-120000}
SEEDS=${DEMO_SEEDS:-3}
OUT=runs/demo
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/4 what this node supports"
"$AT" doctor || true

step "2/4 training PPO on the bundled workloads ($TIMESTEPS timesteps, held-out evaluation as it goes)"
"$AT" train --algo ppo --timesteps "$TIMESTEPS" --eval-freq $((TIMESTEPS / 8)) --seed 0 \
    | tee "$OUT/train.txt"
RUN=$(sed -n 's/^run: //p' "$OUT/train.txt")

step "3/4 evaluating it against default, random, static-best and heuristic (held-out traces)"
COLUMNS=${COLUMNS:-120} "$AT" eval --model "$RUN" --baselines all --seeds "$SEEDS" \
    --plot "$OUT/progress_vs_default.png"

step "4/4 comparing every run tracked so far (table, and an HTML report)"
"$AT" compare --group-by policy -o "$OUT/report.html"

# The URI the runs above went to (flags aside, as the settings resolve it: one home for the default).
uri=$(.venv/bin/python -c 'from autotune.config import load; print(load().tracking_uri)')
cat <<EOT

Done. The trained policy is MLflow run $RUN; its exported weights are its policy/ artifact.
  plot:    $OUT/progress_vs_default.png
  report:  $OUT/report.html (open it in a browser)
  MLflow:  .venv/bin/mlflow ui --backend-store-uri $uri --port 5000   # then http://127.0.0.1:5000
           (or \`.venv/bin/autotune server\` for a server other nodes can log to)
Next: tune a real job with it, as root:
  .venv/bin/autotune tune --model $RUN -- python your_train.py
EOT
