#!/bin/sh
# The steps of the Docker image, one command each: docker/Dockerfile runs them,
# and tests/test_docker.py runs the same ones outside Docker (no engine there),
# so what the image does cannot drift from what the tests check. Bare metal
# (docker/ercot-fast.service) installs with the same two first steps.
#
#   sh docker/image.sh wheels DIR          build: every wheel the service needs, into DIR
#                                          (kernels compiled; needs gcc and the Python headers)
#   sh docker/image.sh meinheld DIR        build: meinheld's wheel alone, its Server header ours
#   sh docker/image.sh install DIR VENV    run time: a virtualenv from DIR's wheels only (no compiler, no index)
#   sh docker/image.sh demo-data DIR       run time: the demo data, read-only
#   sh docker/image.sh start [ARGS]        the entrypoint: `ercot-fast ARGS` as this process (PID 1)
#   sh docker/image.sh healthcheck         exit 0 when /api/health answers 200 on JSON_ADDR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
step=${1:-}
[ $# -gt 0 ] && shift

case "$step" in
wheels)
    dir=${1:?usage: sh docker/image.sh wheels DIR}
    # the project from its source (setup.py compiles the kernels) and every dependency, as wheels;
    # meinheld is not among them: it pins greenlet<0.5, which no longer builds (see `meinheld`)
    python -m pip wheel --quiet --wheel-dir "$dir" "$here/.."
    sh "$0" meinheld "$dir"
    # a source distribution here would need a compiler at run time
    for file in "$dir"/*; do
        case "$file" in *.whl) ;; *) echo "image.sh: $file is not a wheel" >&2; exit 1 ;; esac
    done
    for file in "$dir"/ercot_fast-*.whl; do
        case "$file" in *-none-any.whl) echo "image.sh: $file has no compiled kernels" >&2; exit 1 ;; esac
    done
    ;;
meinheld)
    # meinheld 1.0.2 from its source, with its Server header naming this service
    # ("Server: ercot-fast"), not meinheld and its version; installed with --no-deps
    # beside the current greenlet the project depends on
    dir=${1:?usage: sh docker/image.sh meinheld DIR}
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    python -m pip download --quiet --no-deps --no-binary :all: --dest "$scratch" "meinheld==1.0.2"
    tar -xzf "$scratch/meinheld-1.0.2.tar.gz" -C "$scratch"
    header="$scratch/meinheld-1.0.2/meinheld/server/meinheld.h"
    sed -i 's|^#define SERVER "meinheld/1.0.2"$|#define SERVER "ercot-fast"|' "$header"
    grep -q '^#define SERVER "ercot-fast"$' "$header" || { echo "image.sh: meinheld's Server header not found to replace" >&2; exit 1; }
    python -m pip wheel --quiet --no-deps --wheel-dir "$dir" "$scratch/meinheld-1.0.2"
    ;;
install)
    dir=${1:?usage: sh docker/image.sh install DIR VENV} venv=${2:?usage: sh docker/image.sh install DIR VENV}
    python -m venv "$venv"
    # --no-index --only-binary: what the build stage made, nothing fetched, nothing compiled
    "$venv/bin/python" -m pip install --quiet --no-index --only-binary :all: --find-links "$dir" ercot-fast
    "$venv/bin/python" -m pip install --quiet --no-index --only-binary :all: --no-deps "$dir"/meinheld-*.whl
    # from /, so the installed package is imported; ERCOT_FAST_REQUIRE_EXT: a kernel that is not compiled fails here
    (cd / && ERCOT_FAST_REQUIRE_EXT=1 "$venv/bin/python" -c "import meinheld.server, grpc_health.v1.health, ercot_fast.kernels")
    ;;
demo-data)
    dir=${1:?usage: sh docker/image.sh demo-data DIR}
    ercot-fast demo-data "$dir"
    chmod -R a-w "$dir"
    ;;
start)
    exec ercot-fast "$@"
    ;;
healthcheck)
    # the address and scheme as the service itself reads them from the environment;
    # the certificate is not verified: it is the container's own port
    exec python - <<'EOF'
import ssl
import sys
import urllib.request

from ercot_fast import config
from ercot_fast.cli import build_parser

served = config.serve_config(build_parser().parse_args(["serve"]))
host, port = config.split_addr(served.json_addr)
host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
url = f"{'https' if served.http_tls else 'http'}://{host}:{port}/api/health"
try:
    urllib.request.urlopen(url, timeout=2, context=ssl._create_unverified_context())
except OSError as exc:
    sys.exit(f"unhealthy: {url}: {exc}")
EOF
    ;;
*)
    echo "usage: sh docker/image.sh wheels DIR | meinheld DIR | install DIR VENV | demo-data DIR | start [ARGS] | healthcheck" >&2
    exit 2
    ;;
esac
