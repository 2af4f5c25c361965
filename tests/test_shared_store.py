"""The store held once for every process: snapshots written and mapped back,
the master publishing, followers swapping between requests, and the shrink
rule that guards reloads. On tests/data's genuine cut (no ../shared)."""
import mmap
import os
import shutil

import numpy as np
import pytest
from falcon import testing

from ercot_fast import health
from ercot_fast.api.app import LiveApp, create_app
from ercot_fast.datasets import DATASETS
from ercot_fast.datadir import open_data_dir
from ercot_fast.serve import reload
from ercot_fast.store import snapshot
from ercot_fast.store.load import load_store
from ercot_fast.store.shared import Publisher

TILE = {"start_date": "2021-02-17", "end_date": "2021-02-17", "hubs": "HB_NORTH", "price_type": "da"}


def same_store(a, b):
    assert (a.version, a.synthetic, a.files_loaded, a.skipped_files) == (b.version, b.synthetic, b.files_loaded, b.skipped_files)
    for name in DATASETS:
        x, y = a.datasets[name], b.datasets[name]
        assert np.array_equal(x.timestamps, y.timestamps) and list(x.columns) == list(y.columns)
        for series in x.columns:
            assert x.columns[series].equals(y.columns[series]), (name, series)
    assert a.settlement_points == b.settlement_points


def test_snapshot_round_trip_is_the_same_store_mapped_not_read(fixture_store, tmp_path):
    mapped = snapshot.open_store(snapshot.write(fixture_store, tmp_path / "s"))
    same_store(mapped, fixture_store)
    north = mapped.datasets["day_ahead"].columns["HB_NORTH"]
    # the values live in the mapped file, not in Python's heap
    with open(tmp_path / "s" / "day_ahead.arrow", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        raw = m[:]
    assert north.buffers()[1].to_pybytes() in raw
    body = testing.TestClient(create_app(mapped)).simulate_get("/api/prices", params=TILE)
    assert body.status_code == 200 and body.content == testing.TestClient(create_app(fixture_store)).simulate_get(
        "/api/prices", params=TILE
    ).content


@pytest.fixture
def publisher(tmp_path):
    made = Publisher(tmp_path)
    yield made
    made.close()


def test_followers_swap_to_what_the_master_publishes(fixture_store, day_ahead_only, publisher):
    publisher.publish(fixture_store)
    follower = publisher.follower()
    assert not follower.changed()
    before = follower.store
    publisher.set_problems([health.problem(health.RELOAD_REFUSED, "nope")])
    assert follower.changed() and follower.refresh() and not follower.changed()
    assert follower.store is before and follower.problems[0]["problem"] == health.RELOAD_REFUSED
    smaller = day_ahead_only
    publisher.publish(smaller)
    assert follower.refresh() and follower.problems == ()
    assert len(follower.store.datasets["real_time_15min"]) == 0 and follower.store.version == smaller.version


def test_live_app_answers_from_the_new_store_at_the_next_request(fixture_store, day_ahead_only, publisher):
    publisher.publish(day_ahead_only)
    client = testing.TestClient(LiveApp(publisher.follower(), lambda f: create_app(f.store, problems=f.problems)))
    rt = {**TILE, "price_type": "rt"}
    assert client.simulate_get("/api/prices", params=rt).json["timestamps"] == []
    publisher.publish(fixture_store)
    assert len(client.simulate_get("/api/prices", params=rt).json["timestamps"]) == 24
    publisher.set_problems([health.problem(health.RELOAD_FAILED, "disk on fire")])
    assert client.simulate_get("/api/health").json["status"] == "degraded"


def test_the_masters_status_is_followed_without_a_rebuild(fixture_store, publisher):
    publisher.publish(fixture_store)
    follower = publisher.follower()
    assert not follower.draining and not follower.flight_serving
    built = []

    def build(followed):
        built.append(followed.store)
        return create_app(followed.store, problems=followed.problems, draining=lambda: followed.draining)

    client = testing.TestClient(LiveApp(follower, build))
    assert client.simulate_get("/api/ready").status_code == 200
    publisher.set_status(draining=True, flight_serving=True)
    resp = client.simulate_get("/api/ready")
    assert resp.status_code == 503 and resp.json["reason"] == "draining: the service is stopping"
    assert follower.draining and follower.flight_serving and len(built) == 1  # the same app, the same caches
    generation = follower.generation
    publisher.set_status(draining=True)  # no change: nothing published
    assert not follower.changed() and follower.generation == generation
    assert publisher.follower().draining  # a process forked later starts with it
    publisher.set_api_keys({"desk": "00" * 32})  # new keys: a rebuild (the guard holds them)
    client.simulate_get("/api/ready")
    assert len(built) == 2 and follower.api_keys == {"desk": "00" * 32}
    with pytest.raises(ValueError, match="unknown status"):
        publisher.set_status(nope=True)


def test_old_snapshots_are_removed(fixture_store, publisher):
    for _ in range(4):
        publisher.publish(fixture_store)
    assert sorted(p.name for p in publisher.directory.glob("store-*")) == ["store-3", "store-4"]
    directory = publisher.directory
    publisher.close()
    assert not directory.exists()


@pytest.fixture(scope="module")
def day_ahead_only(fixture_utc_dir, tmp_path_factory):
    """The fixture's store without its real-time files."""
    target = tmp_path_factory.mktemp("day_ahead_only")
    (target / "flattened").mkdir()
    for path in (fixture_utc_dir / "flattened").glob("DA_prices_*.parquet"):
        shutil.copy(path, target / "flattened")
    return load_store(target)


# --- the shrink rule -------------------------------------------------------------------


def test_a_reload_that_loses_data_is_a_shrink(fixture_store, day_ahead_only, tmp_path):
    assert reload.shrinkage(fixture_store, fixture_store, 0.9) == []
    empty = load_store(tmp_path)
    assert reload.shrinkage(fixture_store, empty, 0.9) == [
        "the new load holds no prices (is the data directory mounted and complete?)"
    ]
    reasons = reload.shrinkage(fixture_store, day_ahead_only, 0.9)
    assert any(r.startswith("real_time_15min would have no rows") for r in reasons)
    assert reload.shrinkage(day_ahead_only, fixture_store, 0.9) == []  # growth


def test_losing_a_series_or_rows_is_a_shrink(fixture_store, fixture_utc_dir, tmp_path):
    import pyarrow.parquet as pq

    target = tmp_path / "fewer"
    (target / "flattened").mkdir(parents=True)
    for path in (fixture_utc_dir / "flattened").glob("*.parquet"):
        table = pq.read_table(path)
        if path.name.startswith("DA_prices_2021"):
            table = table.drop_columns(["HB_WEST"])
        if path.name.startswith("DA_prices_2019"):
            table = table.slice(0, 10)  # most of HB_PAN's first days gone
        pq.write_table(table, target / "flattened" / path.name)
    fewer = load_store(target)
    reasons = reload.shrinkage(fixture_store, fewer, 0.9)
    assert any("under 90% of the" in r for r in reasons)
    assert reload.shrinkage(fixture_store, fewer, 0.0) == []  # the rows rule off; HB_WEST is still in 2019-2020


def test_the_allow_shrink_marker_allows_one_reload(tmp_path):
    assert not reload.shrink_allowed_once(open_data_dir(tmp_path))
    (tmp_path / reload.ALLOW_SHRINK_ONCE).touch()
    assert reload.shrink_allowed_once(open_data_dir(tmp_path))
    assert not reload.shrink_allowed_once(open_data_dir(tmp_path))  # used up


def test_a_snapshot_that_cannot_be_written_leaves_nothing(fixture_store, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot.write_atomically.__globals__["os"], "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        snapshot.write(fixture_store, tmp_path / "store-2")
    assert not (tmp_path / "store-2").exists()  # the next reload can use the name again
    monkeypatch.undo()
    same_store(snapshot.open_store(snapshot.write(fixture_store, tmp_path / "store-2")), fixture_store)


def test_runtime_folders_of_dead_masters_are_removed(tmp_path):
    orphan = tmp_path / "ercot-fast-1073741824-abcd"  # no such pid
    orphan.mkdir()
    (orphan / "generation").write_bytes(bytes(8))
    mine = tmp_path / f"ercot-fast-{os.getpid()}-efgh"  # a live master's
    mine.mkdir()
    (mine / "generation").write_bytes(bytes(8))
    unrelated = tmp_path / "ercot-fast-notes"
    unrelated.mkdir()
    publisher = Publisher(tmp_path)
    try:
        assert not orphan.exists() and mine.exists() and unrelated.exists()
        assert publisher.directory.name.startswith(f"ercot-fast-{os.getpid()}-")
    finally:
        publisher.close()
