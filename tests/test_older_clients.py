"""The older service's client examples, run as their users wrote them, against
`ercot-fast serve` on 127.0.0.1 over the real data (plus ancillary prices):
a Python ``requests`` function sending ``datetime.isoformat() + 'Z'``, a
JavaScript ``fetch`` with ``toISOString()`` (the TypeScript example without
its type annotations, run by Node), curl, and the pyarrow Flight snippet; each
asks for all four price types with the same three settlement points, as
the generic client did."""
import datetime as dt
import json
import shutil
import subprocess
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pyarrow.parquet as pq
import pytest
import requests

from serving import Served

HUBS = ["HB_HOUSTON", "HB_NORTH", "LZ_SOUTH"]
PRICE_TYPES = ["day_ahead", "real_time", "ancillary_services", "combined"]
START, END = dt.datetime(2021, 2, 17, 6), dt.datetime(2021, 2, 18, 5)  # naive UTC, as the older clients held them
PRODUCTS = ["NSPIN", "REGDN", "REGUP", "RRS"]


@pytest.fixture(scope="module")
def served(utc_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("older_clients") / "data"
    shutil.copytree(utc_dir, data)
    hours = np.arange(np.datetime64("2021-02-01T06:00"), np.datetime64("2021-03-01T06:00"), np.timedelta64(1, "h"))
    table = pa.table({"datetime_ts": pa.array(hours.astype("datetime64[ms]"), type=pa.timestamp("ms", tz="UTC")),
                      **{p: np.full(len(hours), 10.0 + i) for i, p in enumerate(PRODUCTS)}})
    pq.write_table(table, data / "flattened" / "AS_prices_2021.parquet")
    server = Served(["--data-dir", str(data), "--workers", "1", "--worker-class", "sync"], {})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def check(body, price_type):
    """What the generic client shows for a price type: 24 hours, its series."""
    assert len(body["timestamps"]) == 24 and body["timestamps"][0] == "2021-02-17T06:00:00Z"
    names = [s["hub"] for s in body["data"]]
    if price_type == "ancillary_services":
        assert names == PRODUCTS  # system-wide: the hubs sent do not filter
    elif price_type == "combined":
        assert names == [f"{p}_{h}" for h in HUBS for p in ("DA", "RT")] + [f"AS_{p}" for p in PRODUCTS]
    else:
        assert names == HUBS
    assert all(isinstance(v, (int, float)) for s in body["data"] for v in s["prices"])  # none null


# --- the Python example, as written ------------------------------------------------------------


def get_prices(base, start_date, end_date, hubs, price_type="day_ahead"):
    params = {
        "start_date": start_date.isoformat() + "Z",
        "end_date": end_date.isoformat() + "Z",
        "hubs": ",".join(hubs),
        "price_type": price_type,
    }
    response = requests.get(f"{base}/api/prices", params=params)
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize("price_type", PRICE_TYPES)
def test_python_requests_client(served, price_type):
    check(get_prices(served.base, START, END, HUBS, price_type), price_type)


# --- the TypeScript example (its JavaScript), in Node ------------------------------------------------

FETCH_CLIENT = textwrap.dedent("""
    async function getPrices(base, startDate, endDate, hubs, priceType) {
      const params = new URLSearchParams({
        start_date: startDate.toISOString(),
        end_date: endDate.toISOString(),
        hubs: hubs.join(','),
        price_type: priceType,
      });
      const response = await fetch(`${base}/api/prices?${params}`);
      if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
      return response.json();
    }
    const [base, priceType] = process.argv.slice(2);
    getPrices(base, new Date(Date.UTC(2021, 1, 17, 6)), new Date(Date.UTC(2021, 1, 18, 5)),
              ['HB_HOUSTON', 'HB_NORTH', 'LZ_SOUTH'], priceType)
      .then((body) => console.log(JSON.stringify(body)))
      .catch((error) => { console.error(error.message); process.exit(1); });
""")


@pytest.mark.parametrize("price_type", PRICE_TYPES)
def test_javascript_fetch_client(served, tmp_path, price_type):
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("needs Node.js 18+ (global fetch): apt-get install nodejs (.ci/run installs it)")
    script = tmp_path / "client.mjs"
    script.write_text(FETCH_CLIENT)
    done = subprocess.run([node, str(script), served.base, price_type], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    check(json.loads(done.stdout), price_type)


# --- curl and Flight ------------------------------------------------------------------------------


@pytest.mark.parametrize("price_type", PRICE_TYPES)
def test_curl(served, price_type):
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("needs curl")
    url = (f"{served.base}/api/prices?start_date=2021-02-17T06:00:00Z&end_date=2021-02-18T05:00:00Z"
           f"&hubs={','.join(HUBS)}&price_type={price_type}")
    done = subprocess.run([curl, "-sS", "--fail", url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    check(json.loads(done.stdout), price_type)


@pytest.mark.parametrize("price_type", PRICE_TYPES)
def test_pyarrow_flight_snippet(served, price_type):
    client = flight.connect(served.flight_location)
    query = {"start_date": START.isoformat() + "Z", "end_date": END.isoformat() + "Z", "hubs": HUBS, "price_type": price_type}
    table = client.do_get(flight.Ticket(json.dumps(query).encode())).read_all()
    df = table.to_pandas()
    client.close()
    names = list(dict.fromkeys(df["hub"]))
    body = {"timestamps": sorted({t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in df["datetime"]}),
            "data": [{"hub": n, "prices": df.loc[df["hub"] == n, "price"].tolist()} for n in names]}
    check(body, price_type)


def test_mixing_settlement_points_and_products_is_a_clear_400(served):
    response = requests.get(f"{served.base}/api/prices", params={
        "start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH,RRS", "price_type": "as"})
    assert response.status_code == 400
    assert "mixes settlement points (HB_NORTH) and ancillary products (RRS)" in response.json()["error"]
