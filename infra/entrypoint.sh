#!/bin/sh
# The image's entrypoint. coresift's own commands run as `coresift ...`
# (`docker run IMAGE run --source ...`); any other program runs as given, so the image also
# serves a Prefect Docker work pool (`prefect flow-run execute`), `prefect worker start ...`
# and a shell. Keep the list in step with flows/cli.py (tests/test_docker.py checks it).
set -e
case "${1:-}" in
  "" | -* | run | tags | export | dump | report | tag | maintain | bridge) exec coresift "$@" ;;
  *) exec "$@" ;;
esac
