"""Our sched_ext scheduler (``bpf/scx_autotune.bpf.c``) from Python: not an actuator, a service.

:mod:`autotune.scx.scheduler` builds it (through the repository's ``scx/`` tooling), loads,
unloads and reports on it; :mod:`autotune.scx.maps` is the ABI of its pinned maps. The weights
backend that writes into those maps is :mod:`autotune.actuators.weights_scx`: this package never
imports the actuators.
"""
