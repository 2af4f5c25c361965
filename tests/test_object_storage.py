"""A data directory in an object store (s3://bucket/prefix) loads, ingests and
serves exactly as a local one: tested against a real S3 API server (moto's
server mode on 127.0.0.1), through pyarrow's S3 client."""
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from ercot_fast.datadir import open_data_dir
from ercot_fast.ingest import ingest
from ercot_fast.store.load import load_store
from object_store import S3Server
from reference_layout import FIXTURE_DA, FIXTURE_RT
from serving import ERCOT_FAST, Served, fetch, free_port

QUERY = "/api/prices?start_date=2021-02-14&end_date=2021-02-16&hubs=HB_NORTH,HB_HOUSTON&price_type={}"


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        server.bucket("prices")
        yield server


@pytest.fixture
def aws_env(s3, monkeypatch):
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    return s3


@pytest.fixture(scope="module")
def reference_on_s3(s3, fixture_utc_dir):
    s3.upload(fixture_utc_dir, "prices/reference")
    return "s3://prices/reference"


def assert_same_store(one, other):
    assert one.version == other.version  # the ETags' basis
    assert one.datasets.keys() == other.datasets.keys()
    for name, dataset in one.datasets.items():
        twin = other.datasets[name]
        np.testing.assert_array_equal(dataset.timestamps, twin.timestamps)
        assert dataset.columns.keys() == twin.columns.keys()
        for series, values in dataset.columns.items():
            np.testing.assert_array_equal(values.to_numpy(zero_copy_only=False), twin.columns[series].to_numpy(zero_copy_only=False))


def test_a_layout_on_s3_loads_into_the_same_arrays_as_locally(aws_env, reference_on_s3, fixture_utc_dir):
    remote = load_store(open_data_dir(reference_on_s3, aws_env.endpoint))
    local = load_store(fixture_utc_dir)
    assert local.total_rows > 0
    assert_same_store(remote, local)
    assert remote.data_dir == reference_on_s3


def test_ingest_into_s3_writes_whole_objects_and_leaves_no_temporaries(aws_env, tmp_path):
    remote = open_data_dir("s3://prices/ingested", aws_env.endpoint)
    inputs = [*FIXTURE_DA, *FIXTURE_RT]
    report = ingest(inputs, remote)
    ingest(inputs, tmp_path / "local")
    local_files = sorted(p.relative_to(tmp_path / "local").as_posix() for p in (tmp_path / "local").rglob("*.parquet"))
    assert local_files and aws_env.keys("prices/ingested") == local_files  # no lock, no temporary, no part
    assert report.datasets["day_ahead"].files_written[0].startswith("s3://prices/ingested/ercot_fast/day_ahead/")
    for name in local_files:
        assert pq.read_table(f"prices/ingested/{name}", filesystem=aws_env.filesystem).equals(pq.read_table(tmp_path / "local" / name))
    assert_same_store(load_store(remote), load_store(tmp_path / "local"))
    again = ingest(inputs, remote)  # idempotent: nothing rewritten
    assert all(not d.files_written for d in again.datasets.values())


def test_ingest_into_s3_sets_an_unreadable_object_aside_and_rebuilds_it(aws_env):
    remote = open_data_dir("s3://prices/damaged", aws_env.endpoint)
    ingest(list(FIXTURE_DA), remote)
    [first, *_] = aws_env.keys("prices/damaged")
    with aws_env.filesystem.open_output_stream(f"prices/damaged/{first}") as out:
        out.write(b"not parquet at all")
    ingest(list(FIXTURE_DA), remote)
    keys = aws_env.keys("prices/damaged")
    assert first in keys and any(k.startswith(first + ".unreadable-") for k in keys)
    assert pq.read_table(f"prices/damaged/{first}", filesystem=aws_env.filesystem).num_rows > 0


def test_serve_from_s3_answers_as_from_the_local_folder(s3, reference_on_s3, fixture_utc_dir):
    remote = Served(["--data-dir", reference_on_s3, "--s3-endpoint", s3.endpoint, "--workers", "1"], env=s3.env)
    local = Served(["--data-dir", str(fixture_utc_dir), "--workers", "1"], env={})
    try:
        assert remote.wait_ready()[0] == 200 and local.wait_ready()[0] == 200
        for price_type in ("day_ahead", "real_time"):
            status, headers, body = fetch(remote.base + QUERY.format(price_type))
            assert status == 200 and b"HB_NORTH" in body
            assert (status, headers["ETag"], body) == (lambda s, h, b: (s, h["ETag"], b))(*fetch(local.base + QUERY.format(price_type)))
    finally:
        output = remote.stop()
        local.stop()
    assert f"from {reference_on_s3}" in output


@pytest.mark.parametrize("data_dir, endpoint, message", [
    ("s3://no-such-bucket/prices", "s3", "the bucket 'no-such-bucket' does not exist"),
    ("s3://prices/x", "unreachable", "cannot be read"),
    ("s3://prices/x", "ftp://127.0.0.1:21", "is not a URL"),
    ("s3:///prefix", "s3", "names no bucket"),
])
def test_an_unusable_object_store_stops_serve_and_ingest_with_what_to_change(s3, data_dir, endpoint, message, tmp_path):
    endpoint = {"s3": s3.endpoint, "unreachable": f"http://127.0.0.1:{free_port()}"}.get(endpoint, endpoint)
    csv = tmp_path / "x.csv"
    csv.write_text("DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice,DSTFlag\n02/14/2021,01:00,HB_NORTH,20.5,N\n")
    for command in (["serve", "--json-addr", f"127.0.0.1:{free_port()}", "--flight-addr", f"127.0.0.1:{free_port()}",
                     "--stream-addr", f"127.0.0.1:{free_port()}"],
                    ["ingest", str(csv)]):
        done = subprocess.run([ERCOT_FAST, *command, "--data-dir", data_dir, "--s3-endpoint", endpoint],
                              env={**__import__("os").environ, **s3.env}, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0, done
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
