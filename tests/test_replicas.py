"""Two instances over one s3:// prefix behind nginx (docker/nginx/
replicas.conf.template as written, on loopback ports): the same answers and
ETags from both; HTTP/2 over TLS to clients; one instance killed under load
loses at most its requests in flight; new data reaches both within a reload
interval; a Flight pull spread over both (--flight-advertise)."""
import json
import os
import re
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pyarrow.flight as flight
import pytest

from ercot_fast.client import PriceClient
from ercot_fast.datadir import open_data_dir
from ercot_fast.ingest import ingest
from object_store import S3Server
from serving import Load, Served, fetch, free_port, wait_until
from throwaway_tls import ThrowawayCA, nginx_binary, nginx_command, stop_nginx

TEMPLATE = Path(__file__).resolve().parents[1] / "docker" / "nginx" / "replicas.conf.template"
RELOAD_INTERVAL = 1.0
PATHS = [
    "/api/prices?start_date=2021-02-14&end_date=2021-02-16&hubs=HB_NORTH,HB_HOUSTON&price_type=da",
    "/api/prices?start_date=2021-02-15&end_date=2021-02-15&hubs=HB_WEST&price_type=rt&resolution=15min",
    "/api/prices?start_date=2021-02-01&end_date=2021-02-28&hubs=HB_NORTH&price_type=da&aggregate=daily",
    "/api/available_hubs",
]
NEW_DAY = "/api/prices?start_date=2021-03-02&end_date=2021-03-02&hubs=HB_NORTH&price_type=da"


def render(template, values):
    """The template as the nginx image's envsubst fills it: only these ${NAME}s."""
    text, unknown = template, set(re.findall(r"\$\{(\w+)\}", template)) - set(values)
    assert not unknown, f"the template uses {unknown}, which the test does not set"
    for name, value in values.items():
        text = text.replace("${" + name + "}", str(value))
    return text


@pytest.fixture
def replicas(fixture_utc_dir, tmp_path):
    """(s3, [instance A, instance B], nginx's http and https base URLs, the CA)."""
    if nginx_binary() is None:
        pytest.skip("needs Debian's nginx (apt-get install nginx; .ci/run installs it)")
    ca = ThrowawayCA(tmp_path / "tls")
    with S3Server() as s3:
        s3.bucket("prices")
        s3.upload(fixture_utc_dir, "prices/shared")
        ports = [(free_port(), free_port(), free_port()) for _ in range(2)]
        advertise = ",".join(f"grpc://127.0.0.1:{flight_port}" for _, flight_port, _ in ports)
        instances = [
            Served(["--data-dir", "s3://prices/shared", "--s3-endpoint", s3.endpoint, "--workers", "2",
                    "--reload-interval", str(RELOAD_INTERVAL), "--flight-advertise", advertise,
                    "--stream-addr", f"127.0.0.1:{stream_port}"],
                   env=s3.env, port=port, flight_port=flight_port)
            for port, flight_port, stream_port in ports
        ]
        http_port, https_port = free_port(), free_port()
        site = render(TEMPLATE.read_text(), {
            "REPLICA_A": f"127.0.0.1:{ports[0][0]}", "REPLICA_B": f"127.0.0.1:{ports[1][0]}",
            "STREAM_A": f"127.0.0.1:{ports[0][2]}", "STREAM_B": f"127.0.0.1:{ports[1][2]}",
            "HTTP_PORT": f"127.0.0.1:{http_port}", "HTTPS_PORT": f"127.0.0.1:{https_port}",
            "TLS_CERT": ca.cert, "TLS_KEY": ca.key,
        })
        folder = tmp_path / "nginx"
        folder.mkdir()
        (folder / "replicas.conf").write_text(site)
        temp = "".join(f"    {kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = folder / "nginx.conf"
        conf.write_text(("user root;\n" if os.geteuid() == 0 else "")
                        + f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
                        "events { worker_connections 1024; }\n"
                        f"http {{\n    access_log off;\n{temp}    include {folder / 'replicas.conf'};\n}}\n")
        proxy = subprocess.Popen(nginx_command(folder, conf), start_new_session=True, stderr=subprocess.PIPE, text=True)
        try:
            for instance in instances:
                assert instance.wait_ready()[0] == 200
            http_base = f"http://127.0.0.1:{http_port}"
            wait_until(lambda: _answers(http_base), f"nginx did not answer: {(folder / 'error.log').read_text()}")
            yield s3, instances, http_base, f"https://127.0.0.1:{https_port}", ca
        finally:
            assert stop_nginx(proxy) == 0
            for instance in instances:
                instance.stop()


def _answers(base):
    try:
        return fetch(base + "/api/health")[0] == 200
    except OSError:
        return False


def test_replicas_behind_nginx(replicas, tmp_path):
    import httpx

    s3, (first, second), http_base, https_base, ca = replicas
    # the same answers, byte for byte, and the same ETags, from both and through nginx
    for path in PATHS:
        answers = [fetch(base + path) for base in (first.base, second.base, http_base, http_base)]
        assert all(status == 200 for status, _, _ in answers)
        assert len({body for _, _, body in answers}) == 1
        assert len({headers.get("ETag") for _, headers, _ in answers}) == 1

    # HTTP/2 over TLS, as a browser speaks it
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=ca.ca), base_url=https_base) as client:
        for path in PATHS:
            resp = client.get(path)  # compressed as negotiated (httpx asks for zstd, br, gzip), decoded here
            assert resp.http_version == "HTTP/2" and resp.status_code == 200
            assert resp.content == fetch(first.base + path)[2]
            plain = client.get(path, headers={"Accept-Encoding": "identity"})
            assert plain.http_version == "HTTP/2" and plain.headers.get("etag") == fetch(first.base + path)[1].get("ETag")

    # the live stream passes nginx unbuffered: its backfill arrives as an event at once
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=ca.ca), base_url=https_base) as client:
        with client.stream("GET", "/api/stream?price_type=da&hubs=HB_NORTH&backfill=2", timeout=20) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            lines = []
            for line in resp.iter_lines():
                lines.append(line)
                if line.startswith("data:"):
                    break
            assert any(line.startswith("id:") for line in lines) and '"HB_NORTH"' in lines[-1]

    # a Flight pull spread over both replicas is the pull of one
    ticket = {"start_date": "2021-02-01", "end_date": "2021-02-28", "hubs": ["HB_NORTH", "HB_WEST"], "price_type": "rt",
              "resolution": "15min"}
    with PriceClient(second.flight_location) as prices:
        spread = prices.read(ticket)
    with flight.connect(first.flight_location) as plain:
        assert spread.equals(plain.do_get(flight.Ticket(json.dumps(ticket).encode())).read_all())

    # new data on S3 reaches both within a reload interval (plus the load itself)
    (tmp_path / "new.csv").write_text("DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice,DSTFlag\n"
                                      + "".join(f"03/02/2021,{h:02d}:00,HB_NORTH,{40 + h},N\n" for h in range(1, 25)))
    os.environ.update(s3.env)
    ingest([tmp_path / "new.csv"], open_data_dir("s3://prices/shared", s3.endpoint))
    landed = time.monotonic()
    seen = {}
    while len(seen) < 2:
        for name, instance in (("first", first), ("second", second)):
            if name not in seen and b"41.0" in fetch(instance.base + NEW_DAY)[2]:
                seen[name] = time.monotonic() - landed
        assert time.monotonic() - landed < 60, f"new data not served by both: {seen}"
        time.sleep(0.05)
    print(f"new data served {seen['first']:.2f} s and {seen['second']:.2f} s after it landed "
          f"(reload interval {RELOAD_INTERVAL} s)")
    assert fetch(first.base + NEW_DAY)[1]["ETag"] == fetch(second.base + NEW_DAY)[1]["ETag"]

    # one replica killed under load: only its requests in flight can fail
    connections = 8
    with Load(int(http_base.rsplit(":", 1)[1]), PATHS, connections=connections) as load:
        load.wait_for(300)
        os.killpg(first.proc.pid, signal.SIGKILL)  # the master, its workers, its Flight child: all at once
        first.proc.wait(timeout=10)
        killed_at = load.answered
        load.wait_for(300)
    lost = len(load.failures)
    print(f"killed one replica under load: {lost} of {load.answered + lost} requests failed "
          f"({connections} connections, {killed_at} answered before the kill)")
    assert lost <= connections, load.failures
    assert set(load.statuses) == {200}
    assert fetch(http_base + PATHS[0])[0] == 200  # the survivor serves
