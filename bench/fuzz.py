"""Fuzz a running ``ercot-fast serve`` over HTTP and Arrow Flight.

One question: does any input make the service answer 5xx, answer something
other than JSON (outside the documented server-layer rejections), leak a
traceback, a server path or a Python type name, or stop serving?

HTTP: seeded, schemathesis-style generation from the API's own parameter space
(routes, methods, the query parameters with good, bad and hostile values,
POST bodies, headers) mixed with raw garbage in the request line, each request
sent on a raw socket (some on kept-alive connections). Documented server-layer
rejections (README, "Limits"): meinheld answers a request line it cannot parse
or one over its size limits itself, with an HTML 400 (or 413/408) and closes
the connection; they are counted apart.

Flight: random tickets (bytes, JSON of every type, queries with wrong fields),
descriptors and actions; every error must be a Flight error whose message has
no traceback, path or type name.

    python bench/fuzz.py --requests 100000 --flight-requests 5000 --out /tmp/fuzz.json

starts a server on the demo data (or --data-dir, or --base-url/--flight-url of
one already running) and prints a JSON summary; exit status 1 when anything
above was found. The test suite runs it with a few thousand requests.
"""
import argparse
import json
import random
import socket
import string
import sys
import time
import urllib.parse

import _harness as harness

ROUTES = ["/api/prices", "/api/health", "/api/ready", "/api/available_hubs", "/api/openapi.json", "/metrics",
          "/api/prices/", "/api", "/", "/api/unknown", "//api/prices", "/api/prices/../health", "/api/%70rices", "/API/PRICES", "/api/prices?"]
METHODS = ["GET"] * 8 + ["POST"] * 3 + ["HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "TRACE", "FOO"]
PARAMS = ["start_date", "end_date", "hubs", "price_type", "resolution", "tz", "layout", "format", "x"]
GOOD = {
    "start_date": ["2024-07-08", "2021-02-14", "2024-07-08T00:00:00Z", "2024-07-08T05:00:00.000Z", "2024-07-08T00:00:00-05:00"],
    "end_date": ["2024-07-14", "2021-02-20", "2024-07-14T23:00:00Z", "2024-12-31"],
    "hubs": ["HB_NORTH", "HB_NORTH,HB_WEST", "LZ_HOUSTON, HB_PAN", "RRS,ECRS", "HB_NORTH,HB_NORTH"],
    "price_type": ["da", "day_ahead", "rt", "real_time", "as", "ancillary_services", "combined", "DA", "Rt"],
    "resolution": ["hourly", "15min"],
    "tz": ["UTC", "America/Chicago", "z"],
}
HOSTILE = ["", " ", "%00", "\x00", "\r\n", "null", "[]", "{}", "-1", "1e309", "9999-12-31", "0000-01-01",
           "2024-13-45", "2024-07-08T25:61:61Z", "2024-07-08T00:00:00", "\u2603", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
           "' OR 1=1 --", "<script>", "../../etc/passwd", "%ff%fe", "HB_" * 50, "a" * 3000, ",,,,", "now", "today",
           "1700000000000", "2019-01-01T00:00:00+14:00", "2019-01-01T00:00:00-99:00", "NaN", "Infinity"]
SERVER_LAYER = (400, 408, 411, 413, 414, 431)


def random_value(rng, name):
    if name in GOOD and rng.random() < 0.6:
        return rng.choice(GOOD[name])
    if rng.random() < 0.7:
        return rng.choice(HOSTILE)
    return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40)))


def random_query(rng):
    names = rng.sample(PARAMS, rng.randint(0, len(PARAMS)))
    if rng.random() < 0.2:
        names += rng.choices(PARAMS, k=rng.randint(1, 4))  # repeated parameters
    pairs = [(name, random_value(rng, name)) for name in names]
    if rng.random() < 0.05:
        pairs.append(("hubs", ",".join(rng.choices(harness.SETTLEMENT_POINTS, k=rng.randint(100, 1500)))))
    if rng.random() < 0.1:  # not percent-encoded at all
        return "&".join(f"{k}={v}" for k, v in pairs)
    return urllib.parse.urlencode(pairs)


def random_body(rng):
    choice = rng.random()
    if choice < 0.5:
        body = {name: random_value(rng, name) for name in rng.sample(PARAMS, rng.randint(0, 7))}
        if "hubs" in body and rng.random() < 0.7:
            body["hubs"] = rng.choices(harness.SETTLEMENT_POINTS + ["NOPE", 5, None], k=rng.randint(0, 30))
        return json.dumps(body).encode()
    if choice < 0.7:
        return json.dumps(rng.choice([[], 5, "x", None, True, [{"a": 1}], {"hubs": {"a": 1}}])).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))


def random_request(rng):
    """Raw request bytes, and whether the request line is deliberately broken."""
    if rng.random() < 0.08:  # garbage in the request line itself
        line = rng.choice([
            b"GET /api/\x01health HTTP/1.1",
            b"GET /api/prices?x=\x7f HTTP/1.1",
            b"GET " + b"/api/prices?hubs=" + b"A" * rng.randint(8000, 20000) + b" HTTP/1.1",
            b"GET /api/health HTTP/9.9",
            b"GET /api/health",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello
            b"G\x00ET / HTTP/1.1",
            bytes(rng.randrange(256) for _ in range(rng.randint(1, 100))),
        ])
        return line + b"\r\nHost: x\r\nConnection: close\r\n\r\n", True
    method = rng.choice(METHODS)
    target = rng.choice(ROUTES)
    if target.startswith("/api/prices") or rng.random() < 0.2:
        target = target.rstrip("?") + "?" + random_query(rng)
    headers = [b"Host: 127.0.0.1", b"Connection: close"]
    if rng.random() < 0.2:
        headers.append(b"If-None-Match: " + rng.choice([b'"x"', b"*", b"W/\"a\", \"b\"", b"\xff"]))
    if rng.random() < 0.2:
        headers.append(b"Origin: https://dash.example")
    if rng.random() < 0.1:
        headers.append(b"Access-Control-Request-Method: " + rng.choice([b"GET", b"POST", b"DELETE"]))
    body = b""
    if method in ("POST", "PUT", "PATCH") and rng.random() < 0.9:
        body = random_body(rng)
        headers.append(b"Content-Type: " + rng.choice([b"application/json", b"text/plain", b"application/x-www-form-urlencoded"]))
        headers.append(b"Content-Length: %d" % len(body))
    request_line = f"{method} {target} HTTP/1.1".encode("utf-8", "surrogateescape")
    return request_line + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body, False


def exchange(port, raw, timeout=10):
    """Send ``raw``; return (status, headers, body) of the answer, or None when
    the server closed the connection without answering."""
    with socket.create_connection((harness.HOST, port), timeout=timeout) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        data = bytearray()
        while chunk := sock.recv(1 << 16):
            data += chunk
    if not data:
        return None
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return status, headers, body


def leaks(text):
    """What of a server's internals ``text`` shows (empty when nothing)."""
    found = [word for word in ("Traceback", 'File "', ".py\"", "site-packages", "Error:", "Exception:") if word in text]
    return found


def fuzz_http(port, requests, seed):
    rng = random.Random(seed)
    counts = {"requests": 0, "5xx": 0, "not_json": 0, "leaks": 0, "server_layer_rejections": 0, "closed_without_answer": 0}
    statuses = {}
    examples = []
    for _ in range(requests):
        raw, broken_line = random_request(rng)
        counts["requests"] += 1
        answer = exchange(port, raw)
        if answer is None:
            counts["closed_without_answer"] += 1
            if not broken_line:
                examples.append({"what": "no answer", "request": raw[:300].decode("latin-1")})
            continue
        status, headers, body = answer
        statuses[status] = statuses.get(status, 0) + 1
        method = raw.split(b" ", 1)[0]
        if status >= 500:
            counts["5xx"] += 1
            examples.append({"what": f"status {status}", "request": raw[:300].decode("latin-1"), "body": body[:300].decode("latin-1")})
        if leaks(body.decode("utf-8", "replace")):
            counts["leaks"] += 1
            examples.append({"what": "leak", "request": raw[:300].decode("latin-1"), "body": body[:500].decode("latin-1")})
        if status in (204, 304) or method in (b"HEAD", b"OPTIONS") or not body and status < 400:
            continue
        target = raw.split(b"\r\n", 1)[0].split(b" ")[1:2] or [b""]
        if status == 200 and (target[0] == b"/" or target[0].startswith((b"/?", b"/static/"))):
            continue  # the dashboard's page and files: HTML, CSS, JavaScript, not JSON
        if status == 200 and b" /metrics" in raw.split(b"\r\n", 1)[0]:  # the Prometheus text, parsed back
            if not _prometheus_text(body):
                counts["not_json"] += 1
                examples.append({"what": "bad Prometheus text", "request": raw[:300].decode("latin-1")})
            continue
        if "json" not in headers.get("content-type", ""):
            if status in SERVER_LAYER and "html" in headers.get("content-type", body[:20].decode("latin-1").lower()):
                counts["server_layer_rejections"] += 1
            else:
                counts["not_json"] += 1
                examples.append({"what": "not JSON", "status": status, "request": raw[:300].decode("latin-1"), "body": body[:300].decode("latin-1")})
            continue
        try:
            json.loads(body)
        except ValueError:
            counts["not_json"] += 1
            examples.append({"what": "bad JSON", "status": status, "request": raw[:300].decode("latin-1")})
    return {**counts, "statuses": dict(sorted(statuses.items())), "examples": examples[:20]}


def _prometheus_text(body):
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return bool(list(text_string_to_metric_families(body.decode())))
    except (ValueError, UnicodeDecodeError):
        return False


def random_ticket(rng):
    choice = rng.random()
    if choice < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    if choice < 0.4:
        return rng.choice([b"ercot_prices", b"day_ahead", b"", b"null", b"[]", b"{}", b"\xff\xfe{}", b'{"dataset": 5}'])
    query = {name: random_value(rng, name) for name in rng.sample(PARAMS + ["dataset"], rng.randint(0, 8))}
    if rng.random() < 0.5:
        query["hubs"] = rng.choices(harness.SETTLEMENT_POINTS + ["NOPE", 1, None, []], k=rng.randint(0, 10))
    if rng.random() < 0.3:
        query["dataset"] = rng.choice(["day_ahead", "real_time_15min", "ancillary_services", "nodal", 7, None])
    if rng.random() < 0.3:
        query["layout"] = rng.choice(["wide", "long", "tall", 3])
    return json.dumps(query).encode()


def fuzz_flight(location, requests, seed):
    import pyarrow as pa
    import pyarrow.flight as flight

    rng = random.Random(seed)
    counts = {"requests": 0, "answered": 0, "flight_errors": 0, "leaks": 0, "other_errors": 0}
    examples = []
    client = flight.connect(location)
    for _ in range(requests):
        counts["requests"] += 1
        ticket = random_ticket(rng)
        call = rng.random()
        try:
            if call < 0.5:
                client.do_get(flight.Ticket(ticket)).read_all()
            elif call < 0.7:
                client.get_flight_info(flight.FlightDescriptor.for_command(ticket))
            elif call < 0.8:
                # path segments are protobuf strings: a client can only send UTF-8
                segments = [p.decode("utf-8", "replace") for p in ticket.split(b"/")[:3] if p] or [""]
                client.get_schema(flight.FlightDescriptor.for_path(*segments))
            elif call < 0.95:
                list(client.do_action(flight.Action(ticket.decode("latin-1")[:40], ticket)))
            else:
                writer, _ = client.do_put(flight.FlightDescriptor.for_command(ticket), pa.schema([("x", pa.int64())]))
                writer.close()
            counts["answered"] += 1
        except (pa.ArrowException, flight.FlightError) as exc:
            counts["flight_errors"] += 1
            server_text = str(exc).split(". gRPC client debug context")[0]
            if leaks(server_text) or "/work/" in server_text or "ValueError" in server_text or "KeyError" in server_text:
                counts["leaks"] += 1
                examples.append({"ticket": ticket[:200].decode("latin-1"), "message": server_text[:500]})
        except Exception as exc:  # noqa: BLE001 -- anything else is a finding
            counts["other_errors"] += 1
            examples.append({"ticket": ticket[:200].decode("latin-1"), "error": f"{type(exc).__name__}: {exc}"[:500]})
    healthy = json.loads(list(client.do_action(flight.Action("healthcheck", b"")))[0].body.to_pybytes())["status"]
    client.close()
    return {**counts, "healthy_after": healthy in ("healthy", "degraded"), "examples": examples[:20]}


def run(args):
    started = time.perf_counter()
    report = {"seed": args.seed}
    port = urllib.parse.urlsplit(args.base_url).port
    report["http"] = fuzz_http(port, args.requests, args.seed)
    health = json.loads(harness.http_get(f"{args.base_url}/api/health"))
    report["http"]["healthy_after"] = health["status"] in ("healthy", "degraded")
    if args.flight_requests:
        report["flight"] = fuzz_flight(args.flight_url, args.flight_requests, args.seed)
    report["seconds"] = round(time.perf_counter() - started, 1)
    http, flight_report = report["http"], report.get("flight", {})
    report["clean"] = (
        http["5xx"] == http["not_json"] == http["leaks"] == 0
        and http["healthy_after"]
        and flight_report.get("leaks", 0) == flight_report.get("other_errors", 0) == 0
        and flight_report.get("healthy_after", True)
    )
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    harness.add_data_dir_option(parser)
    parser.add_argument("--requests", type=int, default=3000, help="HTTP requests (default 3000)")
    parser.add_argument("--flight-requests", type=int, default=500, help="Flight calls (default 500; 0: none)")
    parser.add_argument("--seed", type=int, default=20210215)
    parser.add_argument("--worker-class", default="meinheld")
    parser.add_argument("--base-url", help="fuzz this running server instead of starting one")
    parser.add_argument("--flight-url", help="its Flight location (grpc://host:port)")
    parser.add_argument("--out", help="also write the JSON summary here")
    args = parser.parse_args(argv)
    if args.base_url:
        report = run(args)
    else:
        from ercot_fast.demo import write_demo_data

        with harness.scratch("bench-fuzz-") as scratch:
            data_dir = harness.data_dir(args.data_dir, scratch, write_demo_data)
            json_addr, flight_addr = harness.free_addr(), harness.free_addr()
            command = harness.serve_command(data_dir, json_addr, flight_addr, 2, "--worker-class", args.worker_class)
            with harness.Server("ercot-fast", command) as server:
                args.base_url, args.flight_url = f"http://{json_addr}", f"grpc://{flight_addr}"
                server.wait_for_http(f"{args.base_url}/api/health")
                report = run(args)
                report["server_alive_after"] = server.proc.poll() is None
                report["clean"] = report["clean"] and report["server_alive_after"]
    report["command"] = harness.command_line("fuzz.py", args, skip=("out", "base_url", "flight_url"))
    harness.write_results(args.out, report)
    print(json.dumps(report, indent=1))
    return 0 if report["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
