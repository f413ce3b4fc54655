"""Prefect flows that chain coresift's tasks, and the `coresift` command line."""
