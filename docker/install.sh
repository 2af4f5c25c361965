#!/bin/sh
# Install ercot_fast and everything it needs into the active Python environment
# (the README's virtualenv, CI's, or the Docker image's).
#
# meinheld 1.0.2 pins greenlet<0.5, which no longer builds: the project itself
# depends on a current greenlet, and meinheld is installed here with --no-deps.
# gunicorn's sync worker stays available as the fallback (--worker-class sync).
#
#   sh docker/install.sh          editable, kernels compiled in place, test tools too
#   sh docker/install.sh --prod   the service only, as a regular install (the image)
set -eu
cd "$(dirname "$0")/.."
python -m pip install --upgrade pip
if [ "${1:-}" = "--prod" ]; then
    python -m pip install .
else
    python -m pip install -e ".[test]"
fi
python -m pip install --no-deps "meinheld==1.0.2"
# run from / so the installed package is imported, not the source folder
(cd / && python -c "import meinheld.server, grpc_health.v1.health, ercot_fast.kernels as k; print('ercot_fast installed; compiled kernels:', k.COMPILED)")
