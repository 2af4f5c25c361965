"""HTTP, every server side by side (``servers``): PERF.md's queries, each the
same query string repeated and a fresh one per request, at 1 and 64
connections (the quant pull at 1: ``ONE_AT_A_TIME``), one server at a time on
CPU 0, the load generator on CPU 1.

Before it is measured, each server is asked each query it answers once and
its numbers are compared with ours: every server answers the same numbers,
so the comparison is fair (a difference stops the run).
"""
import _harness as harness
import loadgen
import servers

MODES = (("repeated", False), ("fresh", True))
CONNECTIONS = (1, 64)
# PERF.md's quant pulls six years (30 MB of JSON): 64 at once queue for tens of
# seconds behind one worker (gunicorn's 30 s timeout kills the straightforward
# one), and the backlog would still run into the next measurement
ONE_AT_A_TIME = ("quant",)


def run(data_dir, chosen, generator, seconds, warmup, measured=tuple(harness.QUERIES), connections=CONNECTIONS,
        rounds=2):
    """{server key: {query: {"instants", "body_bytes", "repeated"|"fresh": {connections: drive}}}}:
    every query checked, those of ``measured`` driven (the hello-world server: one
    path, under "tile"). ``rounds``: the servers in turn, then in the reverse
    order, ...; each figure the best round's (the one least disturbed by other
    work on the machine)."""
    expected, results = {}, {}
    ordered = [servers.OURS] + [s for s in chosen if s.key != servers.OURS.key]  # ours first: the reference
    for round_ in range(rounds):
        for server in ordered if round_ % 2 == 0 else ordered[::-1]:
            _serve(server, data_dir, generator, seconds, warmup, measured, connections, expected,
                   results.setdefault(server.key, {}))
    return results


def _serve(server, data_dir, generator, seconds, warmup, measured, connections, expected, results):
    """Start ``server``, check its answers, measure it into ``results`` (keeping the best), stop it."""
    process, addr = servers.start(server, data_dir)
    with process:
        process.wait_for_http(f"http://{addr}{server.ready}")
        for query in harness.QUERIES:
            path = server.path(query)
            if path is None or (server.key == servers.HELLO.key and query != "tile"):
                continue
            url = f"http://{addr}{path}"
            body = harness.http_get(url)
            entry = results.setdefault(query, {"body_bytes": len(body)})
            if server.key != servers.HELLO.key:
                entry["instants"] = _check(server, query, body, expected)
            if query in measured:
                counts = connections[:1] if query in ONE_AT_A_TIME else connections
                for mode, cells in _measure(server, query, url, generator, seconds, warmup, counts).items():
                    best = entry.setdefault(mode, {})
                    for count, measure in cells.items():
                        if "requests_per_s" in measure and measure["requests_per_s"] > best.get(count, {}).get("requests_per_s", -1):
                            best[count] = measure
                        best.setdefault(count, measure)  # an error, when no round measured it
    print(f"  {server.label}: answered {', '.join(results)} with ours' numbers", flush=True)


def _check(server, query, body, expected):
    """The count of instants of ``body``; raises SystemExit unless its numbers are ours'."""
    series, instants = servers.numbers(server, body)
    if server.key == servers.OURS.key:
        expected[query] = (series, instants)
    else:
        ours, ours_instants = expected[query]
        if not series or instants != ours_instants or any(series[name] != ours.get(name) for name in series):
            raise SystemExit(f"error: {server.label} answers {query} with other numbers than ours: "
                             "the comparison would not be fair")
    return instants


def _measure(server, query, url, generator, seconds, warmup, connections):
    entry = {}
    if warmup:
        try:
            loadgen.drive(url, max(connections), warmup, generator=generator)
        except RuntimeError:
            pass  # a warm-up measures nothing; a server that fails it fails its measurements too, noted there
    for mode, fresh in MODES:
        entry[mode] = {}
        for count in connections:
            try:
                measured = loadgen.drive(url, count, seconds, fresh, generator)
            except RuntimeError as exc:  # error answers or a dead worker: that baseline's limit, noted, not the run's end
                entry[mode][str(count)] = {"error": str(exc).splitlines()[0][:300]}
                print(f"  {server.label:<34} {query:<8} {mode:<8} c{count:<3} failed: {entry[mode][str(count)]['error']}")
                continue
            entry[mode][str(count)] = measured
            print(f"  {server.label:<34} {query:<8} {mode:<8} c{count:<3} {measured['requests_per_s']:>9.0f} req/s  "
                  f"p50 {measured['p50_s'] * 1e3:8.2f} ms  p99 {measured['p99_s'] * 1e3:8.2f} ms", flush=True)
    return entry
