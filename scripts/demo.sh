#!/usr/bin/env bash
# The main job (`make demo`): on a bootstrapped node, train PPO on the bundled recorded
# workloads with several seeds, evaluate the policies against every baseline on each recording's
# test part, print the comparison, write the plot and an HTML report, track all of it in MLflow,
# and say how to look at it.
#
# Each recording splits into training (first 60 %: calibration and learning), validation (next
# 20 %: checkpoint choice) and test (last 20 %: the figures) parts; evaluation seeds are never
# training seeds (docs/evaluation.md).
#
# Environment: DEMO_TIMESTEPS (per training seed, default 20000), DEMO_TRAIN_SEEDS (policies
# trained, one per seed, default 5: the intervals are over them), DEMO_SEEDS (evaluation seeds,
# default 3), AUTOTUNE_TRACKING_URI (default runs/mlflow.db).
set -euo pipefail
cd "$(dirname "$0")/.."
AT=.venv/bin/autotune
TIMESTEPS=${DEMO_TIMESTEPS:-20000}
TRAIN_SEEDS=${DEMO_TRAIN_SEEDS:-5}
SEEDS=${DEMO_SEEDS:-3}
OUT=runs/demo
mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/4 what this node supports"
"$AT" doctor || true

step "2/4 training PPO on the bundled workloads' training parts, $TRAIN_SEEDS seeds × $TIMESTEPS timesteps (validation parts choose checkpoints)"
MODELS=()
for ((seed = 0; seed < TRAIN_SEEDS; seed++)); do
    "$AT" train --algo ppo --timesteps "$TIMESTEPS" --eval-freq $((TIMESTEPS / 4)) --seed "$seed" \
        | tee "$OUT/train-$seed.txt"
    MODELS+=(--model "$(sed -n 's/^run: //p' "$OUT/train-$seed.txt")")
done
RUN=$(sed -n 's/^run: //p' "$OUT/train-0.txt")

step "3/4 evaluating them against default, random, static-best and heuristic (test parts, $SEEDS evaluation seeds)"
COLUMNS=${COLUMNS:-160} "$AT" eval "${MODELS[@]}" --baselines all --seeds "$SEEDS" \
    --plot "$OUT/progress_vs_default.png"

step "4/4 comparing every run tracked so far (table, and an HTML report)"
"$AT" compare --group-by policy -o "$OUT/report.html"

# The URI the runs above went to (flags aside, as the settings resolve it: one home for the default).
uri=$(.venv/bin/python -c 'from autotune.config import load; print(load().tracking_uri)')
cat <<EOT

Done. The trained policies are MLflow runs ${MODELS[*]//--model /}; each one's exported
weights are its policy/ artifact.
  plot:    $OUT/progress_vs_default.png
  report:  $OUT/report.html (open it in a browser)
  MLflow:  .venv/bin/mlflow ui --backend-store-uri $uri --port 5000   # then http://127.0.0.1:5000
           (or \`.venv/bin/autotune server\` for a server other nodes can log to)
Next: tune a real job with one of them, as root:
  .venv/bin/autotune tune --model $RUN -- python your_train.py
EOT
