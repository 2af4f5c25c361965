"""What TLS costs on the dashboard tile, side by side in one run: meinheld on
plain HTTP (the baseline), gunicorn's gthread worker on plain HTTP (the worker
class's own cost) and over HTTPS (`--tls-cert/--tls-key`), the sync worker over
HTTPS (no keep-alive: a handshake per request), and Debian's nginx terminating
TLS in front of meinheld (docker/nginx/ercot-fast.conf as documented). One
HTTP worker pinned to CPU 0, nginx (one worker process) on CPU 0 beside it,
wrk on CPU 1; the same ECDSA P-256 certificate of a throwaway CA; the
response cache on (the default). Measured over kept-alive connections (a
dashboard's) and with a new connection, hence a TLS handshake, per request
(`Connection: close`: scripts calling `requests.get`, curl). Rounds alternate
the variants; the best requests/s of each is kept.

    python bench/bench_tls.py [--data-dir DIR] [--duration 5] [--rounds 2] [--out bench/results/tls.json]

Needs wrk and openssl; the nginx variant is skipped (and said so) without nginx.
"""
import argparse
import ssl
import sys
import urllib.request

import _harness as harness
from loadgen import add_wrk_options, wrk
from ercot_fast.demo import write_demo_data

sys.path.insert(0, str(harness.HERE.parent / "tests"))
import throwaway_tls  # noqa: E402  (the tests' CA and nginx setup: the configuration they test is the one measured)

# name -> (ercot-fast serve options, over TLS, nginx in front)
VARIANTS = {
    "meinheld, HTTP": (["--worker-class", "meinheld"], False, False),
    "gthread, HTTP": (["--worker-class", "gthread"], False, False),
    "gthread, HTTPS": ([], True, False),
    "sync, HTTPS": (["--worker-class", "sync"], True, False),
    "nginx TLS -> meinheld": (["--worker-class", "meinheld"], False, True),
}
BASELINE = "meinheld, HTTP"
MODES = {"kept-alive connections": (), "a new connection per request": ("Connection: close",)}


def measure(data_dir, scratch, ca, variant, args, headers):
    options, tls, nginx = VARIANTS[variant]
    addr = harness.free_addr()
    if tls:
        options = [*options, "--tls-cert", ca.cert, "--tls-key", ca.key]
    serve = harness.serve_command(data_dir, addr, harness.free_addr(), 1, *options)
    with harness.Server(variant, serve, cpus=harness.SERVER_CPUS) as server:
        base = f"http{'s' if tls else ''}://{addr}"
        server.wait_until(lambda: _get(base + "/api/health", ca))
        if not nginx:
            return _wrk(base, ca, args, headers)
        port = harness.free_port()
        conf = throwaway_tls.nginx_conf(scratch, port, addr, ca.cert, ca.key)
        with harness.Server("nginx", throwaway_tls.nginx_command(scratch, conf), cpus=harness.SERVER_CPUS) as proxy:
            base = f"https://{harness.HOST}:{port}"
            proxy.wait_until(lambda: _get(base + "/api/health", ca))
            return _wrk(base, ca, args, headers)


def _get(url, ca):
    """The body of a GET of ``url``, trusting ``ca`` for https."""
    with urllib.request.urlopen(url, timeout=5, context=ssl.create_default_context(cafile=ca.ca)) as response:
        return response.read()


def _wrk(base, ca, args, headers):
    """wrk's measure of the tile at ``base``, sending ``headers``, with the body's size."""
    url = f"{base}/api/prices?{harness.QUERIES['tile']}"
    wrk(url, args.connections, args.warmup, headers=headers)
    return {**wrk(url, args.connections, args.duration, headers=headers), "body_bytes": len(_get(url, ca))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_wrk_options(parser)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the variants (default 2)")
    parser.add_argument("--out", default=str(harness.RESULTS / "tls.json"))
    args = parser.parse_args()
    variants = list(VARIANTS)
    if throwaway_tls.nginx_binary() is None:
        print("nginx is not installed (apt-get install nginx): its variant is skipped")
        variants.remove("nginx TLS -> meinheld")
    results = {}
    with harness.scratch("bench-tls-") as scratch:
        data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
        ca = throwaway_tls.ThrowawayCA(scratch / "tls")
        for mode, headers in MODES.items():
            best = {}
            for _ in range(args.rounds):
                for variant in variants:
                    measured = measure(data_dir, scratch, ca, variant, args, headers)
                    if measured["requests_per_s"] > best.get(variant, {}).get("requests_per_s", 0):
                        best[variant] = measured
            baseline = best[BASELINE]["requests_per_s"]
            label = f"tile, {mode}"
            results[label] = {name: {**m, "vs_meinheld_http": m["requests_per_s"] / baseline} for name, m in best.items()}
            print(label)
            for name, m in results[label].items():
                print(f"  {name:<22} {m['requests_per_s']:>9.0f} req/s  {m['vs_meinheld_http']:.3f}x  "
                      f"p50 {m['p50_s'] * 1e3:.2f} ms  p99 {m['p99_s'] * 1e3:.2f} ms", flush=True)
    report = {
        "machine": harness.machine("cpus", "processor", "python"),
        "command": harness.command_line("bench_tls.py", args, skip=("out",)),
        "certificate": "ECDSA P-256, TLS 1.3 (wrk's OpenSSL)",
        "results": results,
    }
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
