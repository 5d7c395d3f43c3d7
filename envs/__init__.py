"""Gymnasium environments (installed as ``autotune.envs``): LiveEnv and ReplayEnv."""
