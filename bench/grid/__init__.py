"""The real grid (python -m bench.grid): ground truth for the static-best and replay fidelity."""
