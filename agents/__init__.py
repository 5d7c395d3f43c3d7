"""Agents (installed as ``autotune.agents``): SB3 training, evaluation, baselines, export."""
