"""Benches of the development loop itself (how long `make check` takes)."""
