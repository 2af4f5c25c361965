#!/bin/sh
# Install ercot_fast for development into the active Python environment (the
# README's virtualenv, CI's): editable, the kernels compiled in place, the test
# tools too. The image and bare metal install from wheels instead (docker/image.sh).
#
# meinheld 1.0.2 pins greenlet<0.5, which no longer builds: the project itself
# depends on a current greenlet, and meinheld is installed here with --no-deps,
# built by `docker/image.sh meinheld` from its source with its Server header
# naming this service ("Server: ercot-fast"), not meinheld and its version.
# gunicorn's sync worker stays available as the fallback (--worker-class sync).
#
#   sh docker/install.sh
set -eu
cd "$(dirname "$0")/.."
python -m pip install --upgrade pip
python -m pip install -e ".[test]"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
sh docker/image.sh meinheld "$scratch"
python -m pip install --quiet --no-deps --force-reinstall "$scratch"/meinheld-*.whl
# run from / so the installed package is imported, not the source folder
(cd / && python -c "import meinheld.server, grpc_health.v1.health, ercot_fast.kernels as k; print('ercot_fast installed; compiled kernels:', k.COMPILED)")
