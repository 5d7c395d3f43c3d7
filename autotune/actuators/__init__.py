"""Actuators: the agent's hands on the node (weights, CPU affinity, prefetch depth)."""
