"""Answers of any size reach the client byte-exact, once, under every worker
class, and the connection serves the next request: 10, 30 and 60 MB of
real-time 15-minute prices (45 series) over one keep-alive connection, compared with the
same query answered in-process. On the synthetic demo data (generated)."""
import hashlib
import http.client

import pytest
from falcon import testing

from ercot_fast.api.app import create_app
from ercot_fast.demo import write_demo_data
from ercot_fast.store.load import load_store
from serving import Served

POINTS = ("HB_BUSAVG,HB_HOUSTON,HB_HUBAVG,HB_NORTH,HB_PAN,HB_SOUTH,HB_WEST,LZ_AEN,LZ_CPS,LZ_HOUSTON,LZ_LCRA,"
          "LZ_NORTH,LZ_RAYBN,LZ_SOUTH,LZ_WEST,DC_E,DC_L,DC_N,DC_R,DC_S")
HUBS = ",".join((POINTS.split(",") * 3)[:45])  # 45 series, points repeated
SIZES = {  # about 10, 30 and 60 MB
    "one year": ("2024-01-01", "2024-12-31"),
    "three years": ("2022-01-01", "2024-12-31"),
    "six years": ("2019-01-01", "2024-12-31"),
}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    write_demo_data(directory)
    return directory


@pytest.fixture(scope="module")
def expected(demo_dir):
    """query -> (length, sha256) of the answer the app gives in-process."""
    client = testing.TestClient(create_app(load_store(demo_dir)))
    answers = {}
    for start, end in SIZES.values():
        query = f"/api/prices?start_date={start}&end_date={end}&hubs={HUBS}&price_type=rt&resolution=15min"
        body = client.simulate_get(query).content
        answers[query] = (len(body), hashlib.sha256(body).hexdigest())
    return answers


@pytest.mark.parametrize("worker_class", ["meinheld", "sync"])
def test_large_answers_arrive_intact_over_keep_alive(demo_dir, expected, worker_class):
    served = Served(["--data-dir", str(demo_dir), "--workers", "1", "--worker-class", worker_class], {})
    try:
        served.wait_ready()
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=120)
        sizes = []
        for query, (length, digest) in expected.items():
            connection.request("GET", query)
            resp = connection.getresponse()
            body = resp.read()
            assert resp.status == 200 and int(resp.headers["content-length"]) == length == len(body)
            assert hashlib.sha256(body).hexdigest() == digest
            sizes.append(length)
            # the same connection answers the next request, and nothing stray came before it
            connection.request("GET", "/api/health")
            health = connection.getresponse()
            assert health.status == 200 and b'"status":"healthy"' in health.read()
        connection.close()
        assert sizes[0] > 10e6 and sizes[1] > 30e6 and sizes[2] > 60e6, sizes
        log = served.stop()
        assert served.proc.returncode == 0 and "Traceback" not in log
    finally:
        served.kill_all()
