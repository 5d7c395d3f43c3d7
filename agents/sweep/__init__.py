"""Training sweeps on Ray Tune: trials over algorithms, seeds, hyperparameters and workload
subsets, each trained as `autotune train` trains, stopped early by ASHA, tracked in MLflow, the
best registered in the MLflow Model Registry (``autotune sweep``)."""
