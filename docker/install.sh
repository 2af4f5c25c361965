#!/bin/sh
# Install ercot_fast and everything it needs into the active Python environment
# (a virtualenv, or the image's Python in docker/Dockerfile).
#
# meinheld 1.0.2 pins greenlet<0.5, which no longer builds: the project itself
# depends on a current greenlet, and meinheld is installed here with --no-deps.
# gunicorn's sync worker stays available as the fallback (--worker-class sync).
#
#   sh docker/install.sh          the service, its kernels compiled, and the test tools
#   sh docker/install.sh --prod   the service only (what the Docker image uses)
set -eu
cd "$(dirname "$0")/.."
extras="[test]"
[ "${1:-}" = "--prod" ] && extras=""
python -m pip install --upgrade pip
# editable: the compiled kernels land next to the sources in ercot_fast/
python -m pip install -e ".${extras}"
python -m pip install --no-deps "meinheld==1.0.2"
python -c "import meinheld.gmeinheld, ercot_fast.kernels as k; print('ercot_fast installed; compiled kernels:', k.COMPILED)"
