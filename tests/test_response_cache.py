"""ETag / 304, the response cache, its memory bound and its invalidation."""
import shutil
from typing import NamedTuple

import pyarrow.parquet as pq
import pytest
from falcon import testing

from ercot_fast import timeutil
from ercot_fast.api.app import create_app
from ercot_fast.api.fastpath import ANSWERED_BY, FALCON, FAST_PATH
from ercot_fast.api.response_cache import PreparedAnswers, ResponseCache
from ercot_fast.render import json as json_render
from ercot_fast.store.load import load_store

TILE = "start_date=2021-02-10&end_date=2021-02-16&hubs=HB_NORTH,HB_WEST&price_type=day_ahead"


@pytest.fixture
def render_calls(monkeypatch):
    calls = []
    original = json_render.render_json

    def counting(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(json_render, "render_json", counting)
    return calls


def test_etag_and_304(client):
    first = client.simulate_get("/api/prices", query_string=TILE)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and first.headers["cache-control"] == "public, max-age=60"
    again = client.simulate_get("/api/prices", query_string=TILE, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = client.simulate_get("/api/prices", query_string=TILE, headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    stale = client.simulate_get("/api/prices", query_string=TILE, headers={"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.content == first.content


def test_etag_follows_the_normalised_query(client):
    def etag(query_string):
        return client.simulate_get("/api/prices", query_string=query_string).headers["etag"]

    spelled_differently = "start_date=2021-02-10T06:00:00Z&end_date=2021-02-17T05:59:59.999Z&hubs=HB_NORTH, HB_WEST&price_type=DA"
    assert etag(TILE) == etag(spelled_differently)
    assert etag(TILE) != etag(TILE.replace("HB_NORTH,HB_WEST", "HB_WEST,HB_NORTH"))
    assert etag(TILE) != etag(TILE + "&tz=America/Chicago")


def test_cache_serves_repeated_queries_without_rendering(utc_store, render_calls):
    client = testing.TestClient(create_app(utc_store))
    bodies = [client.simulate_get("/api/prices", query_string=TILE).content for _ in range(3)]
    assert len(render_calls) == 1 and bodies[0] == bodies[1] == bodies[2]


def test_cache_off_renders_every_time(utc_store, render_calls):
    client = testing.TestClient(create_app(utc_store, cache_mb=0))
    bodies = [client.simulate_get("/api/prices", query_string=TILE).content for _ in range(3)]
    assert len(render_calls) == 3 and bodies[0] == bodies[2]


def test_health_is_not_cacheable(client):
    assert client.simulate_get("/api/health").headers["cache-control"] == "no-store"


def test_cache_memory_bound_and_lru_order():
    cache = ResponseCache(1000)
    for i in range(30):
        cache.put(i, bytes([i]) * 100, 100)
        assert cache.size <= 1000
    assert len(cache) == 10 and cache.get(19) is None and cache.get(20) == bytes([20]) * 100
    cache.get(21)  # now most recently used
    cache.put("new", bytes(100), 100)
    assert cache.get(21) is not None and cache.get(22) is None
    cache.put("huge", bytes(251), 251)  # over a quarter of the cache: never stored
    assert cache.get("huge") is None and cache.size == 1000


class Prepared(NamedTuple):
    value: int
    expires: int = None


def test_prepared_answers_are_bounded():
    prepared = PreparedAnswers(max_entries=3)
    for i in range(7):
        prepared.remember(f"q={i}", Prepared(i))
        assert len(prepared) <= 3
    assert prepared.get("q=6").value == 6 and prepared.get("q=0") is None


def test_prepared_relative_answers_expire(monkeypatch):
    prepared = PreparedAnswers()
    now = 1_700_000_000_000
    monkeypatch.setattr(timeutil, "now_ms", lambda: now)
    prepared.remember("start_date=now-24h", Prepared(1, expires=now + 1))
    assert prepared.get("start_date=now-24h").value == 1
    now += 1
    assert prepared.get("start_date=now-24h") is None and len(prepared) == 0


def test_equivalent_spellings_render_once(utc_store, render_calls):
    client = testing.TestClient(create_app(utc_store))
    a = client.simulate_get("/api/prices", query_string=TILE)
    b = client.simulate_get("/api/prices", query_string=TILE.replace("day_ahead", "DA"))
    assert a.content == b.content and a.headers["etag"] == b.headers["etag"]
    assert len(render_calls) == 1


def recording_layer(seen):
    """A seam layer that records (path, status, which path answered) of every request."""

    def layer(app):
        def recorded(environ, start_response):
            def start(status, headers, exc_info=None):
                seen.append((environ["PATH_INFO"], status[:3], environ.get(ANSWERED_BY)))
                return start_response(status, headers, exc_info)

            return app(environ, start)

        return recorded

    return layer


@pytest.mark.parametrize("cache_mb", [64, 0])
@pytest.mark.parametrize("origin", [{}, {"Origin": "https://dash.example"}])
def test_fast_path_answers_as_falcon_does(utc_store, cache_mb, origin):
    """An unconditional GET, seen for the first time or repeated, is answered
    in front of Falcon, byte for byte and header for header as the Falcon
    resource answers it (asked with an If-None-Match that does not match);
    both pass the seam."""
    seen = []
    client = testing.TestClient(create_app(utc_store, cache_mb=cache_mb, layers=[recording_layer(seen)]))
    first = client.simulate_get("/api/prices", query_string=TILE, headers=origin)
    again = client.simulate_get("/api/prices", query_string=TILE, headers=origin)
    by_falcon = client.simulate_get("/api/prices", query_string=TILE, headers={**origin, "If-None-Match": '"other"'})
    assert seen == [("/api/prices", "200", FAST_PATH), ("/api/prices", "200", FAST_PATH), ("/api/prices", "200", FALCON)]
    for answer in (first, again):
        assert (answer.status, answer.content) == (by_falcon.status, by_falcon.content)
        assert sorted(answer.headers.items()) == sorted(by_falcon.headers.items())
    # new queries too; conditional requests, errors and other routes go through Falcon
    client.simulate_get("/api/prices", query_string=TILE, headers={"If-None-Match": again.headers["etag"]})
    client.simulate_get("/api/prices", query_string=TILE + "&tz=UTC")
    client.simulate_get("/api/prices", query_string="price_type=nope")
    client.simulate_get("/api/health")
    assert seen[3:] == [
        ("/api/prices", "304", FALCON),
        ("/api/prices", "200", FAST_PATH),
        ("/api/prices", "400", FALCON),
        ("/api/health", "200", FALCON),
    ]


@pytest.mark.parametrize("query_string", [
    "price_type=nope",  # a query error (400)
    "start_date=2021-02-17&end_date=2021-02-17&hubs=HB_NORTH&price_type=da&format=csv&layout=sideways",
    "",  # nothing asked
])
def test_fast_path_errors_are_falcons(utc_store, query_string):
    """What the fast path cannot answer, Falcon answers through its error
    handlers, exactly as when Falcon alone is asked (If-None-Match)."""
    client = testing.TestClient(create_app(utc_store))
    fast = client.simulate_get("/api/prices", query_string=query_string)
    falcon_only = client.simulate_get("/api/prices", query_string=query_string, headers={"If-None-Match": '"x"'})
    assert fast.status_code == 400 and (fast.status, fast.content) == (falcon_only.status, falcon_only.content)
    assert sorted(fast.headers.items()) == sorted(falcon_only.headers.items())


def test_layers_wrap_in_order_and_see_cors(utc_store):
    """Layers compose outermost first, inside CORS: the seam's outermost layer,
    so that answers a layer gives itself (a 401, a 429) carry CORS headers too."""
    order = []

    def named(name):
        def layer(app):
            def call(environ, start_response):
                order.append(name)
                return app(environ, start_response)

            return call

        return layer

    headers_seen = []

    def headers_layer(app):
        def call(environ, start_response):
            def start(status, headers, exc_info=None):
                headers_seen.append(dict(headers))
                return start_response(status, headers, exc_info)

            return app(environ, start)

        return call

    client = testing.TestClient(create_app(utc_store, layers=[named("outer"), named("inner"), headers_layer]))
    resp = client.simulate_get("/api/health", headers={"Origin": "https://dash.example"})
    assert order == ["outer", "inner"] and resp.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in headers_seen[0]  # added outside the layers


def test_bad_queries_are_never_remembered(client):
    bad = "start_date=2021-02-17&end_date=2021-02-17&hubs=NOPE&price_type=da"
    for _ in range(2):
        resp = client.simulate_get("/api/prices", query_string=bad)
        assert resp.status_code == 400 and "NOPE" in resp.json["error"]


def test_changed_data_changes_etag_and_answer(utc_dir, tmp_path):
    copy = shutil.copytree(utc_dir, tmp_path / "data")
    before = testing.TestClient(create_app(load_store(copy))).simulate_get("/api/prices", query_string=TILE)
    path = copy / "flattened" / "DA_prices_2021.parquet"
    table = pq.read_table(path)
    north = table.column("HB_NORTH").to_numpy().copy()
    north += 1.0  # ERCOT corrected every price
    pq.write_table(table.set_column(table.column_names.index("HB_NORTH"), "HB_NORTH", [north]), path)
    after = testing.TestClient(create_app(load_store(copy))).simulate_get("/api/prices", query_string=TILE)
    assert before.headers["etag"] != after.headers["etag"]
    old, new = before.json["data"][0]["prices"], after.json["data"][0]["prices"]
    assert [round(n - o, 6) for o, n in zip(old, new)] == [1.0] * len(old)
    # the same data loaded twice gives the same ETag (replicas agree)
    again = testing.TestClient(create_app(load_store(copy))).simulate_get("/api/prices", query_string=TILE)
    assert again.headers["etag"] == after.headers["etag"]
