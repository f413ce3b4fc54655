"""Prefect tasks: thin wrappers over `coresift` that add caching, retries, logs and artifacts."""
