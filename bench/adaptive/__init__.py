"""Real-machine benches of the workloads whose best setting changes during the run."""
