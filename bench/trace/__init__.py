"""Benchmarks of the trace format: write speed, size per hour, query time."""
