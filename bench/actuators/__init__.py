"""Benchmarks of the actuators: apply time, and the effect of each knob on a real job."""
