"""Real workloads for recording, replay fidelity and online tuning (see README.md here)."""
