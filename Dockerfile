# coresift: the CLI, the notification bridges, and the flows for Docker work pools
# (`prefect worker start ...`). Dependency ranges come from pyproject.toml, so the image gets
# current releases within them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    CORESIFT_CACHE=/opt/coresift/cache \
    CORESIFT_PROJECT_DIR=/opt/coresift

WORKDIR /opt/coresift
COPY pyproject.toml README.md ./
COPY coresift ./coresift
COPY tasks ./tasks
COPY flows ./flows
RUN pip install ".[bridges,dask,ray]" \
    # Export the default model to ONNX at build time, so containers start warm and offline.
    && python -c "from coresift.embedding import load_embedder; load_embedder('efficientnet-lite0')"

COPY prefect.yaml ./
ENTRYPOINT ["coresift"]
CMD ["--help"]
