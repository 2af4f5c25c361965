"""POST /api/prices for lists too long for a URL, the series cap, request
bodies that are wrong, and health that tells the truth. On tests/data's
genuine cut (no ../shared)."""
import json

import pyarrow.parquet as pq
import pytest
from falcon import testing

from ercot_fast import health
from ercot_fast.api.app import create_app
from ercot_fast.store.load import load_store

URI = {"start_date": "2021-02-14", "end_date": "2021-02-20", "price_type": "real_time", "resolution": "15min"}


def post(client, body, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.simulate_post("/api/prices", body=raw, headers={"Content-Type": "application/json", **headers})


def test_post_answers_exactly_like_the_get(fixture_client):
    hubs = ["HB_NORTH", "LZ_WEST", "HB_HOUSTON"]
    got = fixture_client.simulate_get("/api/prices", params={**URI, "hubs": ",".join(hubs)})
    posted = post(fixture_client, {**URI, "hubs": hubs})
    assert posted.status_code == got.status_code == 200
    assert posted.content == got.content and posted.headers["etag"] == got.headers["etag"]
    assert len(posted.json["timestamps"]) == 7 * 96
    again = post(fixture_client, {**URI, "hubs": hubs}, **{"If-None-Match": posted.headers["etag"]})
    assert again.status_code == 304


def test_post_takes_a_list_longer_than_any_url(fixture_store):
    client = testing.TestClient(create_app(fixture_store, max_series=5000))
    hubs = list(fixture_store.settlement_points) * 200  # 3,000 names, duplicates included: ~30 KB
    resp = post(client, {**URI, "price_type": "da", "resolution": "hourly", "hubs": hubs})
    assert resp.status_code == 200 and [s["hub"] for s in resp.json["data"]] == hubs


@pytest.mark.parametrize(
    "body, words",
    [
        (b"{not json", ("the body is not JSON", "send a JSON object")),
        (b'["HB_NORTH"]', ("the body is a JSON list, not an object",)),
        (json.dumps({**URI, "hub": ["HB_NORTH"]}).encode(), ("unknown key in the body: hub", "the body takes")),
        (json.dumps({**URI, "hubs": "HB_NOPE"}).encode(), ("unknown settlement point: HB_NOPE", "/api/available_hubs")),
        (json.dumps({**URI, "hubs": [1, 2]}).encode(), ("hubs must be a list of names",)),
        (b"\xff\xfe", ("the body is not JSON",)),
    ],
)
def test_bad_bodies_are_json_400s(fixture_client, body, words):
    resp = post(fixture_client, body)
    assert resp.status_code == 400 and list(resp.json) == ["error", "details"]
    assert all(word in resp.json["error"] + resp.json["details"] for word in words), resp.json


def test_a_body_over_the_limit_is_413(fixture_client):
    resp = post(fixture_client, b" " * ((1 << 20) + 1))
    assert resp.status_code == 413 and "over the limit" in resp.json["details"]


def test_series_cap_counts_duplicates(fixture_store):
    client = testing.TestClient(create_app(fixture_store, max_series=3))
    ok = client.simulate_get("/api/prices", params={**URI, "hubs": "HB_NORTH,HB_NORTH,HB_WEST"})
    assert ok.status_code == 200
    over = client.simulate_get("/api/prices", params={**URI, "hubs": "HB_NORTH,HB_NORTH,HB_WEST,HB_NORTH"})
    assert over.status_code == 400 and "4 series asked for, more than the maximum of 3" in over.json["error"]
    assert "fewer hubs" in over.json["details"]
    assert post(client, {**URI, "hubs": ["HB_NORTH"] * 4}).status_code == 400


def test_ancillary_queries_accept_settlement_point_names(fixture_utc_dir, tmp_path):
    """API.md: for ancillary_services, settlement point names do not filter."""
    import shutil

    import numpy as np
    import pyarrow as pa

    data = shutil.copytree(fixture_utc_dir, tmp_path / "data")
    hours = np.arange(np.datetime64("2021-02-17T06:00"), np.datetime64("2021-02-18T06:00"), np.timedelta64(1, "h"))
    table = pa.table(
        {
            "datetime_ts": pa.array(hours.astype("datetime64[ms]"), type=pa.timestamp("ms", tz="UTC")),
            "RRS": np.full(24, 4.75),
            "NSPIN": np.full(24, 2.5),
        }
    )
    pq.write_table(table, data / "flattened" / "AS_prices_2021.parquet")
    client = testing.TestClient(create_app(load_store(data)))
    day = {"start_date": "2021-02-17", "end_date": "2021-02-17", "price_type": "as"}
    plain = client.simulate_get("/api/prices", params=day)
    with_hubs = client.simulate_get("/api/prices", params={**day, "hubs": "HB_NORTH,HB_WEST"})
    assert plain.status_code == with_hubs.status_code == 200 and plain.content == with_hubs.content
    assert [s["hub"] for s in plain.json["data"]] == ["NSPIN", "RRS"]
    picked = client.simulate_get("/api/prices", params={**day, "hubs": "RRS"})
    assert [s["hub"] for s in picked.json["data"]] == ["RRS"]
    # both kinds at once is ambiguous: a 400 naming both
    mixed = client.simulate_get("/api/prices", params={**day, "hubs": "HB_NORTH,RRS"})
    assert mixed.status_code == 400 and "HB_NORTH" in mixed.json["error"] and "RRS" in mixed.json["error"]
    assert client.simulate_get("/api/prices", params={**day, "hubs": "SPIN"}).status_code == 400


# --- health -------------------------------------------------------------------------------


def test_healthy_store_is_healthy(fixture_client):
    resp = fixture_client.simulate_get("/api/health")
    assert resp.status_code == 200 and resp.json["status"] == "healthy" and "problems" not in resp.json


def test_a_skipped_file_makes_health_degraded(fixture_utc_dir, tmp_path):
    import shutil

    data = shutil.copytree(fixture_utc_dir, tmp_path / "data")
    (data / "flattened" / "AS_prices_2021.parquet").write_bytes(b"PAR1 not really")
    store = load_store(data)
    resp = testing.TestClient(create_app(store)).simulate_get("/api/health")
    assert resp.status_code == 200 and resp.json["status"] == "degraded"
    [found] = resp.json["problems"]
    assert found["problem"] == "skipped_files" and "flattened/AS_prices_2021.parquet" in found["details"]
    assert str(tmp_path) not in json.dumps(resp.json)  # no server path


def test_master_problems_and_staleness_make_health_degraded(fixture_store):
    refused = health.problem(health.RELOAD_REFUSED, "the last reload was refused: ...")
    client = testing.TestClient(create_app(fixture_store, problems=[refused], stale_after={"real_time_15min": 3600}))
    body = client.simulate_get("/api/health").json
    assert body["status"] == "degraded"
    assert [p["problem"] for p in body["problems"]] == ["reload_refused", "stale_data"]
    assert "real_time_15min ends at 2021-02-21T06:00:00Z" in body["problems"][1]["details"]


def test_staleness_is_measured_from_the_newest_interval(fixture_store):
    newest = int(fixture_store.datasets["day_ahead"].timestamps[-1]) + 3_600_000
    fresh = health.check(fixture_store, stale_after={"day_ahead": 7200}, now_ms=newest + 7_000_000)
    stale = health.check(fixture_store, stale_after={"day_ahead": 7200}, now_ms=newest + 7_300_000)
    assert fresh.body["status"] == "healthy" and stale.body["status"] == "degraded"


def test_no_data_is_503(tmp_path):
    resp = testing.TestClient(create_app(load_store(tmp_path))).simulate_get("/api/health")
    assert resp.status_code == 503 and resp.json["status"] == "no_data" and str(tmp_path) not in resp.text


def test_a_data_set_file_without_rows_is_no_skip(fixture_utc_dir, tmp_path):
    import shutil

    data = shutil.copytree(fixture_utc_dir, tmp_path / "data")
    path = data / "flattened" / "DA_prices_2019.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    assert load_store(data).skipped_files == ()


@pytest.mark.parametrize("path", ["/api/health", "/api/available_hubs", "/api/prices?" + "&".join(f"{k}={v}" for k, v in {**URI, "hubs": "HB_NORTH"}.items())])
def test_head_gives_the_get_headers_without_a_body(fixture_client, path):
    got = fixture_client.simulate_get(path)
    head = fixture_client.simulate_head(path)
    assert head.status_code == got.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"] == "application/json"
