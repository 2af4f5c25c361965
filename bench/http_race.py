"""HTTP, every server side by side (``servers``): PERF.md's queries, each the
same query string repeated and a fresh one per request, at 1 and 64
connections, one server at a time on CPU 0, the load generator on CPU 1.

``run`` measures; ``check`` (``--quick``) asks each server each query once and
compares the numbers with ours, so that the comparison is fair.
"""
import _harness as harness
import loadgen
import servers

MODES = (("repeated", False), ("fresh", True))
CONNECTIONS = (1, 64)


def _each_server(data_dir, chosen):
    """(server, HOST:PORT) of each of ``chosen``, started and ready in turn, stopped after."""
    for server in chosen:
        process, addr = servers.start(server, data_dir)
        with process:
            process.wait_for_http(f"http://{addr}{server.ready}")
            yield server, addr


def run(data_dir, chosen, seconds, warmup, generator):
    """{server key: {query: {"repeated"|"fresh": {connections: measure}}}}, plus body bytes per query."""
    results = {}
    for server, addr in _each_server(data_dir, chosen):
        results[server.key] = {}
        for query in harness.QUERIES:
            path = server.path(query)
            if path is None:
                continue
            url = f"http://{addr}{path}"
            entry = {"body_bytes": len(harness.http_get(url))}
            loadgen.drive(url, max(CONNECTIONS), warmup, generator=generator)
            for mode, fresh in MODES:
                entry[mode] = {}
                for connections in CONNECTIONS:
                    measured = loadgen.drive(url, connections, seconds, fresh, generator)
                    entry[mode][str(connections)] = measured
                    print(f"  {server.label:<34} {query:<8} {mode:<8} c{connections:<3} "
                          f"{measured['requests_per_s']:>9.0f} req/s  p50 {measured['p50_s'] * 1e3:8.2f} ms  "
                          f"p99 {measured['p99_s'] * 1e3:8.2f} ms", flush=True)
            results[server.key][query] = entry
            if server.key == servers.HELLO.key:
                break  # one answer, whatever the query
    return results


def check(data_dir, chosen, generator):
    """Each server asked each query once; raises unless every server's
    numbers equal ours. Returns {server key: {query: instants}} and one
    second of load on the tile per server (the load generator works)."""
    expected, answered, problems = {}, {}, []
    for server, addr in _each_server(data_dir, [servers.OURS] + [s for s in chosen if s.key != servers.OURS.key]):
        answered[server.key] = {}
        for query in harness.QUERIES:
            path = server.path(query)
            if path is None or server.key == servers.HELLO.key:
                continue
            series, instants = servers.numbers(server, harness.http_get(f"http://{addr}{path}"))
            answered[server.key][query] = instants
            if server.key == servers.OURS.key:
                expected[query] = (series, instants)
                continue
            ours, ours_instants = expected[query]
            if instants != ours_instants or series != {name: ours[name] for name in series} or not series:
                problems.append(f"{server.label} answers {query} with other numbers than ours")
        path = server.path("tile")
        answered[server.key]["load"] = loadgen.drive(f"http://{addr}{path}", 1, 1, generator=generator)
        print(f"  {server.label:<34} answered {', '.join(answered[server.key]) or 'its fixed body'}", flush=True)
    if problems:
        raise SystemExit("error: " + "; ".join(problems))
    return answered
