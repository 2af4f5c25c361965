"""`ercot-fast fetch`: ERCOT's published documents into the served store,
against a stand-in for ERCOT's servers (tests/ercot_standin.py) serving
ZIPs built from the real CSVs. The oracle is reference_layout's csv-module
reading of the same CSVs."""
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from ercot_fast import config, fetch
from ercot_fast.cli import build_parser
from ercot_fast.fetch import manifest
from ercot_fast.datadir import open_data_dir
from ercot_fast.fetch.reports import REPORTS
from ercot_fast.ingest import layout
from ercot_standin import STALL_SECONDS, StandIn, central, day_documents, interval_documents, zip_of
from reference_layout import RT_CSV, SHARED_DATA, ms, read_da_csv, read_rt_csv
from serving import ERCOT_FAST, Served, fetch as http_get, free_port, wait_until
from test_ingest import AS_HEADER, as_ms, fake_price, intervals_of, stored

DA_2020 = SHARED_DATA / "np4_190_cd" / "dam_spp_hub_lz_2020.csv"
DAYS = ["10/31/2020", "11/01/2020", "11/02/2020", "11/03/2020"]
QUICK = {"backoff": 0.01, "requests_per_minute": 60_000}  # the tests' back-off and pace: ERCOT's are seconds


@pytest.fixture
def standin():
    server = StandIn()
    yield server
    server.close()


@pytest.fixture(scope="module")
def da_docs(real_data):
    return day_documents(DA_2020, DAYS)


def settings(standin, **changes):
    base = config.FetchConfig(reports=("np4-190-cd",), mis_url=standin.url, api_url=standin.api_url,
                              token_url=standin.token_url)
    return dataclasses.replace(base, **changes)


def oracle(docs, read=read_da_csv):
    """{(utc ms, point): price} of documents' CSVs read by reference_layout, later documents winning."""
    values = {}
    with tempfile.TemporaryDirectory(prefix="fetch-oracle-") as folder:
        for _, blob in docs:
            path = Path(folder) / "document.zip"
            path.write_bytes(blob)
            values.update(as_ms(read(path)))
    return values


def day_before(day, hour=12, minute=30):
    """When ERCOT publishes the day-ahead prices of ``day`` (MM/DD/YYYY): the day before, Central time."""
    date = dt.datetime.strptime(day, "%m/%d/%Y").date() - dt.timedelta(days=1)
    return central(date.year, date.month, date.day, hour, minute)


def run(data_dir, standin, environ=None, **changes):
    return fetch.run(data_dir, settings(standin, **changes), environ=environ or {}, **QUICK)


def test_reports_are_those_config_names():
    assert tuple(REPORTS) == config.FETCH_REPORTS
    assert {r.report_type_id for r in REPORTS.values()} == {12331, 12301, 12329}


def test_first_sync_then_only_new_documents(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    first = [da_docs[d] for d in DAYS[:3]]
    ids = [standin.publish("np4-190-cd", *da_docs[d], day_before(d)) for d in DAYS[:3]]
    summary = run(data, standin)
    assert summary.ok and summary.listed == {"np4-190-cd": 3}  # the XML twins are not listed
    assert (summary.new, summary.fetched, summary.corrupt) == (3, 3, [])
    assert summary.bytes == sum(len(blob) for _, blob in first) and summary.files_written == 2  # October, November
    assert stored(data, "day_ahead") == oracle(first)
    records = json.loads((data / ".fetch" / "manifest.json").read_text())["documents"]
    for doc_id, (name, blob) in zip(ids, first):
        record = records[f"np4-190-cd/{doc_id}"]
        assert record["name"] == name and record["size"] == len(blob) and record["status"] == "ingested"
        assert record["sha256"] == hashlib.sha256(blob).hexdigest() and record["published"].startswith("2020-")
    assert not list((data / ".fetch" / "incoming").iterdir())  # ingested documents are not kept

    name, blob = da_docs[DAYS[3]]
    new_id = standin.publish("np4-190-cd", name, blob, day_before(DAYS[3]))
    summary = run(data, standin)
    assert (summary.listed, summary.new, summary.fetched, summary.files_written) == ({"np4-190-cd": 4}, 1, 1, 1)
    assert standin.downloads() == {**{i: 1 for i in ids}, new_id: 1}  # each document downloaded once
    assert stored(data, "day_ahead") == oracle(first + [(name, blob)])

    summary = run(data, standin)
    assert (summary.new, summary.fetched, summary.added, summary.files_written) == (0, 0, 0, 0)
    assert "listed np4-190-cd 4; 0 new, 0 fetched" in summary.text()


def corrected(blob, replacements):
    """A re-published (``_retry``) day: the same CSV with some prices changed."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        [member] = archive.namelist()
        text = archive.read(member).decode()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    return zip_of({member.replace(".csv", "_retry.csv"): text})


FIXES = [("HB_NORTH,21.08,Y", "HB_NORTH,21.18,Y"), ("01:00,HB_WEST,", "01:00,HB_WEST,1")]


def test_republished_day_replaces_the_values_in_a_later_run(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    name, blob = da_docs["11/01/2020"]
    standin.publish("np4-190-cd", name, blob, central(2020, 10, 31, 12, 30))
    assert run(data, standin).fetched == 1
    before = stored(data, "day_ahead")
    retry = corrected(blob, FIXES)
    standin.publish("np4-190-cd", name.replace(".csv.zip", "_retry.csv.zip"), retry, central(2020, 10, 31, 14, 5))
    summary = run(data, standin)
    assert (summary.fetched, summary.changed, summary.corrections) == (1, 2, ["day_ahead 2020-11-01 (2)"])
    after = stored(data, "day_ahead")
    assert after == oracle([("retry", retry)]) and set(after) == set(before)
    assert sum(before[k] != after[k] for k in before) == 2


def test_republished_day_wins_when_both_are_new_in_one_run(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    name, blob = da_docs["11/01/2020"]
    retry = corrected(blob, FIXES)
    # the retry is listed first (ERCOT lists newest first) and has the smaller id: publication decides
    standin.publish("np4-190-cd", name.replace(".csv.zip", "_retry.csv.zip"), retry, central(2020, 10, 31, 14, 5))
    standin.publish("np4-190-cd", name, blob, central(2020, 10, 31, 12, 30))
    summary = run(data, standin)
    assert summary.fetched == 2 and stored(data, "day_ahead") == oracle([("retry", retry)])


def test_real_time_interval_documents(tmp_path, standin, real_data):
    data = tmp_path / "data"
    docs = interval_documents(RT_CSV[2021], "02/17/2021")
    assert len(docs) == 96
    for i, (name, blob) in enumerate(docs):
        standin.publish("np6-905-cd", name, blob, central(2021, 2, 17, 0, 20) + dt.timedelta(minutes=15 * i))
    summary = run(data, standin, reports=("np6-905-cd",))
    assert summary.ok and summary.fetched == 96
    expected = oracle(docs, read_rt_csv)  # the LZ rows kept, LZEW passed over
    assert stored(data, "real_time_15min") == expected
    assert max(v for (t, p), v in expected.items() if p == "HB_NORTH") == 9315.45


def test_ancillary_service_documents(tmp_path, standin):
    """No genuine NP4-188-CD prices are at hand: generated ones, one document per day (a fall-back day)."""
    data = tmp_path / "data"
    expected = {}
    for day in (dt.date(2023, 11, 5), dt.date(2023, 11, 6)):
        rows = [AS_HEADER]
        for instant, date, hour, _, flag in intervals_of(day, 60):
            for salt, product in enumerate(("ECRS", "NSPIN", "REGDN", "REGUP", "RRS")):
                expected[ms(instant), product] = fake_price(instant, salt)
                rows.append(f"{date},{hour:02d}:00,{product},{expected[ms(instant), product]},{flag}\n")
        name = f"cdr.00012329.0000000000000000.{day:%Y%m%d}.120000.DAMCPCNP4188.csv"
        standin.publish("np4-188-cd", f"{name}.zip", zip_of({name: "".join(rows)}),
                        central(day.year, day.month, day.day, 12) - dt.timedelta(days=1))
    summary = run(data, standin, reports=("np4-188-cd",))
    assert summary.ok and summary.fetched == 2 and summary.added == 49 * 5
    assert stored(data, "ancillary_services") == expected


def test_connection_dropped_mid_download_is_fetched_again(tmp_path, standin, da_docs, caplog):
    data = tmp_path / "data"
    name, blob = da_docs["11/02/2020"]
    doc_id = standin.publish("np4-190-cd", name, blob, central(2020, 11, 1, 12, 30))
    standin.drops[doc_id] = 1
    with caplog.at_level(logging.WARNING, logger="ercot_fast.fetch"):
        summary = run(data, standin)
    assert summary.ok and summary.fetched == 1 and standin.downloads()[doc_id] == 2
    assert "the connection ended" in caplog.text
    assert stored(data, "day_ahead") == oracle([(name, blob)])


def test_a_download_that_stalls_times_out_and_is_asked_again(tmp_path, standin, da_docs, monkeypatch):
    monkeypatch.setattr(fetch.http, "TIMEOUT", (5, STALL_SECONDS / 2))
    name, blob = da_docs["11/02/2020"]
    doc_id = standin.publish("np4-190-cd", name, blob, day_before("11/02/2020"))
    standin.stalls[doc_id] = 2
    summary = run(tmp_path / "data", standin)
    # both stalls timed out and were asked again (a loaded machine may add a time-out of its own)
    assert summary.ok and summary.fetched == 1 and standin.stalls[doc_id] == 0 and standin.downloads()[doc_id] >= 3
    assert stored(tmp_path / "data", "day_ahead") == oracle([(name, blob)])


def test_a_partial_download_is_never_ingested_and_the_next_run_fetches_it(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    (good_name, good), (cut_name, cut) = da_docs["11/02/2020"], da_docs["11/03/2020"]
    standin.publish("np4-190-cd", good_name, good, central(2020, 11, 1, 12, 30))
    cut_id = standin.publish("np4-190-cd", cut_name, cut, central(2020, 11, 2, 12, 30))
    standin.drops[cut_id] = 99  # every attempt breaks off
    summary = run(data, standin)
    assert not summary.ok and summary.fetched == 1 and len(summary.failed) == 1
    assert cut_name in summary.failed[0] and "attempts" in summary.failed[0]
    assert "FAILED, the next run tries again" in summary.text()
    assert stored(data, "day_ahead") == oracle([(good_name, good)])  # nothing of the cut day
    assert list((data / ".fetch" / "incoming").iterdir()) == []  # no partial file left
    assert f"np4-190-cd/{cut_id}" not in manifest.Manifest.load(data).documents
    standin.drops.clear()
    summary = run(data, standin)
    assert summary.ok and (summary.new, summary.fetched) == (1, 1)
    assert stored(data, "day_ahead") == oracle([(good_name, good), (cut_name, cut)])


def test_a_corrupt_zip_is_reported_recorded_and_skipped(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    name, blob = da_docs["11/02/2020"]
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0xFF  # whole, but its CRC fails
    bad_id = standin.publish("np4-190-cd", "bad.csv.zip", bytes(damaged), central(2020, 11, 1, 12, 0))
    standin.publish("np4-190-cd", name, blob, central(2020, 11, 1, 12, 30))
    summary = run(data, standin)
    assert summary.ok and summary.fetched == 1 and len(summary.corrupt) == 1
    assert summary.corrupt[0].startswith(f"bad.csv.zip (doc {bad_id}): a corrupt ZIP")
    assert "CORRUPT, skipped" in summary.text()
    assert manifest.Manifest.load(data).documents[f"np4-190-cd/{bad_id}"]["status"] == "corrupt"
    assert stored(data, "day_ahead") == oracle([(name, blob)])
    assert run(data, standin).new == 0 and standin.downloads()[bad_id] == 1  # not downloaded again


def test_an_error_page_in_place_of_a_document_is_asked_for_again(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    name, blob = da_docs["11/02/2020"]
    doc_id = standin.publish("np4-190-cd", name, blob, day_before("11/02/2020"))
    standin.blobs[doc_id] = b"<html>maintenance</html>"
    summary = run(data, standin)
    assert not summary.ok and "the answer is not a ZIP (24 bytes beginning b'<html>maint" in summary.failed[0]
    assert manifest.Manifest.load(data).documents == {}
    standin.blobs[doc_id] = blob
    summary = run(data, standin)
    assert summary.ok and summary.fetched == 1 and stored(data, "day_ahead") == oracle([(name, blob)])


def backfill(standin, da_docs):
    """The four days in the Public API's archive (one named by its download link only); the MIS lists
    only the last (the same document)."""
    ids = [standin.archive("np4-190-cd", da_docs[d][0], da_docs[d][1], dt.datetime(2024, 1, 1 + i, 12, 30),
                           link_only=i == 1) for i, d in enumerate(DAYS)]
    name, blob = da_docs[DAYS[-1]]
    standin.publish("np4-190-cd", name, blob, central(2024, 1, 4, 12, 30), doc_id=ids[-1])
    return ids


def test_backfill_through_the_public_api_in_a_429_storm(tmp_path, standin, da_docs, caplog):
    data = tmp_path / "data"
    ids = backfill(standin, da_docs)
    standin.throttle = 4  # the first four Public API requests: 429 {"error_key": "throttled"}
    with caplog.at_level(logging.DEBUG):
        summary = run(data, standin, standin.credentials(), since="2024-01-01")
    assert summary.ok, summary.text()
    # the document both list is fetched once, from the archive (with the others, in one download)
    assert summary.listed == {"np4-190-cd": 4} and summary.fetched == 4 and summary.new == 4
    assert standin.requests["429", ""] == 4 and standin.requests["token", ""] == 1
    assert standin.downloads() == {i: 1 for i in ids}
    assert stored(data, "day_ahead") == oracle([da_docs[d] for d in DAYS])
    for secret in standin.credentials().values():
        assert secret not in caplog.text and secret not in summary.text()
    state = manifest.Manifest.load(data)
    assert {r["source"] for r in state.documents.values()} == {"api"} and state.archive_listed["np4-190-cd"]["since"] == "2024-01-01"

    summary = run(data, standin, standin.credentials(), since="2024-01-01")
    assert (summary.new, summary.fetched) == (0, 0)  # listed again from where the last run ended, less a day


def test_an_earlier_since_lists_the_archive_again_and_unlisted_records_are_forgotten(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    ids = backfill(standin, da_docs)
    summary = run(data, standin, standin.credentials(), since="2024-01-03")
    assert (summary.listed, summary.fetched) == ({"np4-190-cd": 2}, 2)
    summary = run(data, standin, standin.credentials(), since="2024-01-01")  # from the new day, not from where it ended
    assert (summary.listed, summary.new, summary.fetched) == ({"np4-190-cd": 4}, 2, 2)
    assert stored(data, "day_ahead") == oracle([da_docs[d] for d in DAYS])
    # the archive is listed on from a day before where it ended: the documents of 2024's first days
    # are listed no more, and their records (published long ago) are dropped; the MIS's one stays
    summary = run(data, standin, standin.credentials(), since="2024-01-01")
    assert (summary.listed, summary.new) == ({"np4-190-cd": 1}, 0)
    assert list(manifest.Manifest.load(data).documents) == [f"np4-190-cd/{ids[-1]}"]


def test_a_429_that_does_not_end_fails_the_run_and_the_next_one_recovers(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    backfill(standin, da_docs)
    standin.throttle = 1000
    summary = run(data, standin, standin.credentials(), since="2024-01-01")
    assert not summary.ok and any("429" in f for f in summary.failed)
    assert summary.fetched == 1  # the MIS still served its one document
    standin.throttle = 0
    summary = run(data, standin, standin.credentials(), since="2024-01-01")
    assert summary.ok and summary.fetched == 3  # the archive's others; the MIS's one is recorded
    assert stored(data, "day_ahead") == oracle([da_docs[d] for d in DAYS])


def test_a_failed_archive_download_keeps_the_listing_where_it_was(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    backfill(standin, da_docs)
    standin.bulk_broken = True
    summary = run(data, standin, standin.credentials(), since="2024-01-01")
    assert any("HTTP 503" in f for f in summary.failed) and summary.fetched == 0
    assert manifest.Manifest.load(data).archive_listed == {}
    standin.bulk_broken = False
    summary = run(data, standin, standin.credentials(), since="2024-01-01")
    assert summary.ok and summary.fetched == 4
    assert stored(data, "day_ahead") == oracle([da_docs[d] for d in DAYS])


def test_credentials_are_checked_and_never_shown(tmp_path, standin, da_docs):
    backfill(standin, da_docs)
    wrong = {**standin.credentials(), "ERCOT_PASSWORD": "not-the-password-5678"}
    summary = run(tmp_path / "data", standin, wrong, since="2024-01-01")
    assert any("refused the credentials (HTTP 400)" in f and "ERCOT_PASSWORD" in f for f in summary.failed)
    assert "not-the-password-5678" not in summary.text()
    with pytest.raises(fetch.FetchError) as caught:
        run(tmp_path / "data", standin, {"ERCOT_API_KEY": "a-key-of-mine-9"}, since="2024-01-01")
    assert "ERCOT_USERNAME, ERCOT_PASSWORD not set" in caught.value.message
    assert "a-key-of-mine-9" not in caught.value.message + caught.value.details
    assert "***" in repr(fetch.archive.Credentials("k", "u", "p"))


def test_an_ingest_holding_the_data_directory_fails_the_run_not_the_documents(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    standin.publish("np4-190-cd", *da_docs["11/02/2020"], day_before("11/02/2020"))
    with layout.locked(open_data_dir(data)):  # `ercot-fast ingest` runs on it
        summary = run(data, standin)
    assert not summary.ok and "another ingest" in summary.failed[0] and summary.fetched == 0
    assert manifest.Manifest.load(data).documents == {}
    summary = run(data, standin)
    assert summary.ok and summary.fetched == 1


def test_a_stop_between_documents_ends_the_run_recording_nothing_of_its_batch(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    for day in DAYS:
        standin.publish("np4-190-cd", *da_docs[day], day_before(day))
    asked = []
    summary = fetch.run(data, settings(standin), environ={}, should_stop=lambda: asked.append(1) or len(asked) > 2, **QUICK)
    assert summary.stopped and summary.fetched == 0 and "(stopped early)" in summary.text()
    assert manifest.Manifest.load(data).documents == {} and stored(data, "day_ahead") == {}
    summary = run(data, standin)
    assert summary.fetched == 4 and stored(data, "day_ahead") == oracle([da_docs[d] for d in DAYS])


def test_one_fetch_at_a_time(tmp_path, standin):
    with manifest.locked(tmp_path):
        with pytest.raises(fetch.FetchError, match="another `ercot-fast fetch` is running"):
            run(tmp_path, standin)


def test_settlement_points_keeps_only_those(tmp_path, standin, da_docs):
    standin.publish("np4-190-cd", *da_docs["11/02/2020"], day_before("11/02/2020"))
    summary = run(tmp_path / "data", standin, settlement_points=("HB_NORTH", "LZ_WEST"))
    assert summary.fetched == 1 and summary.added == 2 * 24
    assert {p for _, p in stored(tmp_path / "data", "day_ahead")} == {"HB_NORTH", "LZ_WEST"}


def test_since_without_credentials_keeps_what_the_mis_lists_since_then(tmp_path, standin, da_docs):
    published = [central(2020, 10, 30, 12), central(2020, 10, 31, 12), central(2020, 11, 1, 12), central(2020, 11, 2, 12)]
    for day, when in zip(DAYS, published):
        standin.publish("np4-190-cd", *da_docs[day], when)
    summary = run(tmp_path / "data", standin, since="2020-11-01")
    assert (summary.listed, summary.fetched) == ({"np4-190-cd": 2}, 2)


# --- the command ------------------------------------------------------------------------------


def test_cli_fetch_once_prints_the_summary(tmp_path, standin, da_docs):
    standin.publish("np4-190-cd", *da_docs["11/02/2020"], central(2020, 11, 1, 12, 30))
    command = [ERCOT_FAST, "fetch", "--data-dir", str(tmp_path / "data"), "--mis-url", standin.url, "--reports", "np4-190-cd"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "fetch: listed np4-190-cd 1; 1 new, 1 fetched" in result.stdout
    assert "values 360 added" in result.stdout  # 24 hours of 15 settlement points
    del standin.blobs[standin.publish("np4-190-cd", *da_docs["11/03/2020"], central(2020, 11, 2, 12, 30))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "FAILED, the next run tries again" in result.stdout and "HTTP 404" in result.stdout


def test_cli_fetch_watch_fetches_again_until_stopped(tmp_path, standin, da_docs):
    data = tmp_path / "data"
    standin.publish("np4-190-cd", *da_docs["11/02/2020"], day_before("11/02/2020"))
    proc = subprocess.Popen([ERCOT_FAST, "fetch", "--watch", "--interval", "0.2", "--data-dir", str(data),
                             "--mis-url", standin.url, "--reports", "np4-190-cd"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def records():
            return manifest.Manifest.load(data).documents if (data / ".fetch" / "manifest.json").exists() else {}

        wait_until(lambda: len(records()) == 1, "the first run did not fetch", 60)
        standin.publish("np4-190-cd", *da_docs["11/03/2020"], day_before("11/03/2020"))
        wait_until(lambda: len(records()) == 2, "a later run did not fetch the new document", 60)
        proc.terminate()
        log, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "fetch stopped" in log and "Traceback" not in log
    assert stored(data, "day_ahead") == oracle([da_docs["11/02/2020"], da_docs["11/03/2020"]])


@pytest.mark.parametrize("flags, message", [
    (["--reports", "np4-999-cd"], "--reports 'np4-999-cd': use some of np4-190-cd"),
    (["--since", "yesterday"], "--since 'yesterday' is not a date like 2024-01-31"),
    (["--interval", "0"], "the fetch interval is a positive number of seconds"),
    (["--mis-url", "ftp://x"], "--mis-url 'ftp://x' is not an http:// or https:// URL"),
])
def test_cli_fetch_bad_settings_say_what_to_change(tmp_path, flags, message):
    result = subprocess.run([ERCOT_FAST, "fetch", "--data-dir", str(tmp_path), *flags], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


def test_cli_fetch_needs_a_local_data_dir(tmp_path):
    for flags, message in (([], "fetch needs --data-dir"), (["--data-dir", "s3://bucket/prices"], "a local --data-dir")):
        env = {k: v for k, v in os.environ.items() if k != "DATA_DIR"}
        result = subprocess.run([ERCOT_FAST, "fetch", *flags], capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode != 0 and message in result.stderr


def test_help_documents_fetch_and_serve_fetch():
    commands = build_parser()._subparsers._group_actions[0].choices
    text = commands["fetch"].format_help()
    for words in ("--watch", "--interval", "--since", "--mis-url", "--api-url", "ERCOT_API_KEY", "ERCOT_USERNAME",
                  "ERCOT_PASSWORD", "30 requests a minute", "manifest.json", "_retry"):
        assert words in text
    serve = commands["serve"].format_help()
    for words in ("--fetch", "--fetch-interval", "--mis-url", "FETCH=1"):
        assert words in serve


def test_serve_fetch_settings_and_describe_hold_no_credential():
    args = build_parser().parse_args(["serve", "--data-dir", "/srv/ercot", "--fetch", "--reports", "NP6-905-CD"])
    settings = config.serve_config(args, environ={"ERCOT_PASSWORD": "hunter2-hunter2"})
    assert settings.fetch.reports == ("np6-905-cd",) and settings.fetch.interval == 300
    assert "hunter2" not in settings.describe() and "fetch=(reports=('np6-905-cd',)" in settings.describe()
    assert config.serve_config(build_parser().parse_args(["serve", "--data-dir", "/d"]), environ={}).fetch is None
    assert config.serve_config(build_parser().parse_args(["serve", "--data-dir", "/d"]), environ={"FETCH": "1"}).fetch
    with pytest.raises(SystemExit, match="--fetch needs --data-dir"):
        config.serve_config(build_parser().parse_args(["serve", "--fetch"]), environ={})
    environ = {"FETCH": "1", "FETCH_REPORTS": "np4-188-cd", "FETCH_SINCE": "2024-02-01", "FETCH_INTERVAL": "600",
               "FETCH_SETTLEMENT_POINTS": "hb_north", "MIS_URL": "http://mirror:8000/", "API_URL": "http://mirror:8001",
               "TOKEN_URL": "http://mirror:8002/token"}
    fetching = config.serve_config(build_parser().parse_args(["serve", "--data-dir", "/d"]), environ=environ).fetch
    assert fetching == config.FetchConfig(("np4-188-cd",), "2024-02-01", 600.0, "http://mirror:8000", "http://mirror:8001",
                                          "http://mirror:8002/token", ("HB_NORTH",))
    flags = build_parser().parse_args(["fetch", "--interval", "900", "--reports", "np6-905-cd"])
    assert (config.fetch_config(flags, environ).interval, config.fetch_config(flags, environ).reports) == (900.0, ("np6-905-cd",))


# --- serve --fetch: the served values --------------------------------------------------------


def test_serve_fetch_keeps_the_service_current(tmp_path, standin, da_docs):
    for day in DAYS[:2]:
        standin.publish("np4-190-cd", *da_docs[day], day_before(day))
    args = ["--data-dir", str(tmp_path / "data"), "--workers", "1", "--worker-class", "sync", "--fetch",
            "--fetch-interval", "0.5", "--mis-url", standin.url, "--reports", "np4-190-cd"]
    service = Served(args, {})
    try:
        service.wait_ready()
        query = "/api/prices?start_date=2020-10-31&end_date=2020-11-03&hubs=HB_NORTH,LZ_WEST&price_type=da"

        def served():
            status, _, body = http_get(service.base + query)
            return json.loads(body) if status == 200 else None

        wait_until(lambda: (a := served()) and len(a["timestamps"]) == 24 + 25, "the first fetch was not served", 90)
        standin.publish("np4-190-cd", *da_docs[DAYS[2]], central(2020, 11, 1, 12, 30))
        wait_until(lambda: len(served()["timestamps"]) == 24 + 25 + 24, "the new day was not served", 90)
        answer = served()
        expected = oracle([da_docs[d] for d in DAYS[:3]])
        times = sorted(t for t, p in expected if p == "HB_NORTH")
        for series in answer["data"]:
            assert series["prices"] == [expected[t, series["hub"]] for t in times]
        status, _, body = http_get(service.base + "/metrics")
        metrics = body.decode()
        assert 'ercot_fast_processes{role="fetch"} 1.0' in metrics
        assert 'ercot_fast_fetch_documents_total{outcome="fetched"} 3.0' in metrics
        assert 'ercot_fast_fetch_runs_total{outcome="ok"}' in metrics
    finally:
        log = service.stop()
    assert "fetch wrote" in log and "asking the master" in log and "reloaded" in log
    assert "Traceback" not in log


def test_serve_fetch_with_some_credentials_does_not_start(tmp_path, standin):
    env = {**os.environ, "ERCOT_API_KEY": "a-key-of-mine-9"}
    env.pop("ERCOT_USERNAME", None)
    command = [ERCOT_FAST, "serve", "--data-dir", str(tmp_path / "data"), "--workers", "1", "--worker-class", "sync",
               "--json-addr", f"127.0.0.1:{free_port()}", "--flight-addr", f"127.0.0.1:{free_port()}",
               "--stream-addr", f"127.0.0.1:{free_port()}",
               "--fetch", "--mis-url", standin.url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode != 0
    assert "error: the fetcher cannot start: the Public API needs" in result.stderr and "ERCOT_USERNAME" in result.stderr
    assert "a-key-of-mine-9" not in result.stderr + result.stdout
