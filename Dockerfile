# coresift: the CLI, the notification bridges, and the job image of Prefect Docker work pools
# (tests/test_docker.py runs the Docker worker's command against ENTRYPOINT and CMD).
# Dependency ranges come from pyproject.toml, so the image gets current releases within them.
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
# EXTRAS: the notification bridges, Dask and Ray workers, and Prefect's typed credential blocks.
# --build-arg KEEP_TORCH=false drops PyTorch (5.3 GB) once the default model is exported: the
# ONNX path never imports it (README: Install size), but other models then cannot be exported.
ARG EXTRAS=bridges,dask,ray,aws,gcp,azure
ARG KEEP_TORCH=true
RUN pip install ".[${EXTRAS}]" \
    # Export the default model to ONNX at build time, so containers start warm and offline.
    && python -c "from coresift.embedding import load_embedder; load_embedder('efficientnet-lite0')" \
    && if [ "$KEEP_TORCH" = false ]; then \
        pip uninstall -y torch torchvision triton $(pip list | awk '/^nvidia-/{print $1}'); fi

COPY prefect.yaml ./
# `docker run IMAGE run ...` runs `coresift run ...`; other programs run as given, so a Prefect
# Docker work pool's `prefect flow-run execute` and `prefect worker start ...` work too.
COPY infra/entrypoint.sh /usr/local/bin/coresift-entrypoint
ENTRYPOINT ["coresift-entrypoint"]
CMD ["--help"]
