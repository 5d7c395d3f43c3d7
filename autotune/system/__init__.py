"""What this node is: kernel features, cgroups, block devices, CPU topology, GPUs.

Read-only probes shared by `autotune doctor`, the actuators and the telemetry.
"""
