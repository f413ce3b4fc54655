"""Helpers for tests and benchmarks: real media to feed coresift, and real servers to feed it
from. The library itself never imports this package; the servers need the `dev` extra."""
