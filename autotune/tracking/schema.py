"""What autotune writes to MLflow: the names every run, report and query agrees on.

Store
    The default tracking URI is :data:`DEFAULT_TRACKING_URI` (``Settings.tracking_uri``,
    ``--tracking-uri``, ``MLFLOW_TRACKING_URI``), with artifacts under ``<runs_dir>/artifacts``.
    Runs go to the experiment :data:`DEFAULT_EXPERIMENT` unless ``--experiment`` says otherwise.
    A run whose store cannot be reached is kept in ``<runs_dir>/spool/<local id>/`` until it is
    uploaded (``autotune sync``).

Tags on every run
    ``autotune.kind`` (one of :data:`KINDS`), ``autotune.host``, ``autotune.git_commit``,
    ``autotune.schema_version`` (the observation schema), ``autotune.knob_table_version`` and
    ``autotune.local_id`` (the spool id, which makes uploads idempotent).

By kind
    ``train``: tags ``autotune.algo``, ``autotune.workloads``; params are the hyperparameters;
    metrics ``train/episode_reward`` and ``eval/progress_vs_default`` over timesteps; the policy
    as the artifact folder ``policy/`` (weights ``.npz`` + metadata ``.json``) and as the run's
    logged model.

    ``eval``: a parent run with one ``eval_result`` child per (policy, workload, seed), tagged
    ``autotune.policy`` (an algo name or a baseline: default, random, static-best, heuristic),
    ``autotune.workload``, ``autotune.seed`` and, for a trained policy, ``autotune.model_run_id``;
    metrics ``progress_vs_default`` (a ratio, 1.0 is the default knobs), ``knob_changes_per_min``
    and ``worst_regression``.

    ``tune``: tags ``autotune.model_run_id``, ``autotune.target_command``; metrics over time
    ``progress_rate``, ``knob/<knob name>`` (the knob table's names) and ``loop_cpu_percent``;
    the summary metrics ``progress_vs_warmup`` (the tuned intervals' mean progress rate over
    the same job's warm-up at default knobs: not a default run) and its 95 % interval
    ``progress_vs_warmup_ci95_low`` / ``_high``, and the same figure as ``progress_vs_default``
    (the name ``autotune compare`` ranks sessions and training runs by; for a session it is
    the warm-up ratio, not a comparison with a default run); these are not logged when the
    session measured no warm-up in the unit it ended in (a job that ended before the warm-up
    it owed), nor ``_high`` when the warm-up's rates do not bound their mean away from 0; the
    artifact ``decisions.jsonl``.

    ``record``: a telemetry recording (tags only, plus whatever its recorder logs).

    ``sweep``: a Ray Tune sweep (``autotune sweep``); params are its budget and search space as
    JSON; each trial is a ``train`` run nested under it (``mlflow.parentRunId``) and tagged
    ``autotune.sweep_trial``; metrics ``sweep/best_progress_vs_default``, ``sweep/trials``,
    ``sweep/stopped_early``, ``sweep/errors``; the artifact ``sweep.json`` (every trial's
    config, node, status and score); tags ``autotune.champion_run_id`` and, once registered,
    ``autotune.model_name`` / ``autotune.model_version``.

Model Registry
    The chosen policy is registered as :data:`REGISTERED_MODEL` (a version per registration,
    its source the training run's ``policy/`` artifact) with the alias :data:`DEFAULT_ALIAS`.
    A ``tune`` run started with ``--model models:/NAME@ALIAS`` (or ``models:/NAME/VERSION``) is
    tagged ``autotune.model_name``, ``autotune.model_version``, ``autotune.model_uri`` and, when
    an alias named it, ``autotune.model_alias``.
"""

from __future__ import annotations

from typing import Final

DEFAULT_TRACKING_URI: Final = "sqlite:///runs/mlflow.db"
DEFAULT_EXPERIMENT: Final = "autotune"
ARTIFACTS_DIR: Final = "artifacts"  # under runs_dir, for file-backed stores
SPOOL_DIR: Final = "spool"  # under runs_dir
MODELS_CACHE_DIR: Final = "models"  # under runs_dir: downloaded policies

# Run kinds.
TRAIN: Final = "train"
EVAL: Final = "eval"
EVAL_RESULT: Final = "eval_result"
TUNE: Final = "tune"
RECORD: Final = "record"
SWEEP: Final = "sweep"
KINDS: Final = (TRAIN, EVAL, EVAL_RESULT, TUNE, RECORD, SWEEP)

# Tags.
TAG_KIND: Final = "autotune.kind"
TAG_HOST: Final = "autotune.host"
TAG_GIT_COMMIT: Final = "autotune.git_commit"
TAG_SCHEMA_VERSION: Final = "autotune.schema_version"
TAG_KNOB_TABLE_VERSION: Final = "autotune.knob_table_version"
TAG_LOCAL_ID: Final = "autotune.local_id"
TAG_ALGO: Final = "autotune.algo"
TAG_WORKLOADS: Final = "autotune.workloads"
TAG_POLICY: Final = "autotune.policy"
TAG_WORKLOAD: Final = "autotune.workload"
TAG_SEED: Final = "autotune.seed"
TAG_MODEL_RUN_ID: Final = "autotune.model_run_id"
TAG_TARGET_COMMAND: Final = "autotune.target_command"
TAG_PARENT_LOCAL_ID: Final = "autotune.parent_local_id"
TAG_SWEEP_TRIAL: Final = "autotune.sweep_trial"
TAG_CHAMPION_RUN_ID: Final = "autotune.champion_run_id"
TAG_MODEL_NAME: Final = "autotune.model_name"
TAG_MODEL_VERSION: Final = "autotune.model_version"
TAG_MODEL_ALIAS: Final = "autotune.model_alias"
TAG_MODEL_URI: Final = "autotune.model_uri"
# MLflow's own tags.
MLFLOW_PARENT_RUN_ID: Final = "mlflow.parentRunId"
MLFLOW_RUN_NAME: Final = "mlflow.runName"

# Baseline policies (values of autotune.policy that are not algorithms).
BASELINES: Final = ("default", "random", "static-best", "heuristic")

# Metrics.
M_EPISODE_REWARD: Final = "train/episode_reward"
M_EVAL_PROGRESS: Final = "eval/progress_vs_default"
M_PROGRESS_VS_DEFAULT: Final = "progress_vs_default"
M_PROGRESS_VS_WARMUP: Final = "progress_vs_warmup"  # a tune session's, over its own warm-up
M_KNOB_CHANGES_PER_MIN: Final = "knob_changes_per_min"
M_WORST_REGRESSION: Final = "worst_regression"
M_PROGRESS_RATE: Final = "progress_rate"
M_LOOP_CPU: Final = "loop_cpu_percent"
KNOB_METRIC_PREFIX: Final = "knob/"

# Artifacts.
POLICY_ARTIFACT: Final = "policy"
# The logged model's name must differ from the artifact folder's: MLflow lists and downloads a
# run's artifact path together with the files of a logged model of the same name.
POLICY_MODEL_NAME: Final = "autotune-policy"
DECISIONS_ARTIFACT: Final = "decisions.jsonl"
SWEEP_ARTIFACT: Final = "sweep.json"

# The Model Registry: the name every node deploys from, and the alias that marks the current one.
REGISTERED_MODEL: Final = "autotune-policy"
DEFAULT_ALIAS: Final = "champion"


def knob_metric(name: str) -> str:
    """The metric holding a knob's trajectory in a tuning session (``knob/weight.trainer``)."""
    return KNOB_METRIC_PREFIX + name
