"""Benchmarks: ratios against a baseline measured in the same run (not pass/fail tests)."""
