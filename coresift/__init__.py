"""coresift: self-hosted, incremental data curation for computer vision.

The pure library: configuration, sources, media decoding, metadata, embedding, selection and
the datapool. It never imports Prefect; `tasks/` and `flows/` add orchestration on top.
"""

__version__ = "0.1.0"
