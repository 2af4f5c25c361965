#!/bin/sh
# Install ercot_fast and everything it needs into the active Python environment
# (the README's virtualenv, CI's, or the Docker image's).
#
# meinheld 1.0.2 pins greenlet<0.5, which no longer builds: the project itself
# depends on a current greenlet, and meinheld is installed here with --no-deps,
# built from its source with its Server header naming this service
# ("Server: ercot-fast"), not meinheld and its version.
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
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
python -m pip download --quiet --no-deps --no-binary :all: --dest "$scratch" "meinheld==1.0.2"
tar -xzf "$scratch/meinheld-1.0.2.tar.gz" -C "$scratch"
header="$scratch/meinheld-1.0.2/meinheld/server/meinheld.h"
sed -i 's|^#define SERVER "meinheld/1.0.2"$|#define SERVER "ercot-fast"|' "$header"
grep -q '^#define SERVER "ercot-fast"$' "$header" || { echo "install.sh: meinheld's Server header not found to replace" >&2; exit 1; }
python -m pip install --quiet --no-deps --force-reinstall "$scratch/meinheld-1.0.2"
# run from / so the installed package is imported, not the source folder
(cd / && python -c "import meinheld.server, grpc_health.v1.health, ercot_fast.kernels as k; print('ercot_fast installed; compiled kernels:', k.COMPILED)")
