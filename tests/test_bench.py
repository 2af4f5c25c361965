"""``python -m bench``: its --quick runs end to end (every server started,
asked each query, checked against ours, stopped; the results JSON, Markdown and
charts written), a server answering other numbers stops the run, and the
Python load generator (wrk's stand-in where wrk is absent) drives a server.
No time is asserted."""
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # bench's modules import their neighbours by name

import http_race  # noqa: E402
import loadgen  # noqa: E402
import servers  # noqa: E402


def test_quick_runs_every_server_and_writes_the_results(tmp_path):
    out = tmp_path / "results"
    run = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out-dir", str(out),
                          "--scale-cache", str(tmp_path / "scale")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    [results] = out.glob("*-quick.json")
    report = json.loads(results.read_text())
    chosen, missing = servers.available()
    assert set(report["http"]) == {s.key for s in chosen} and report["left_out"] == missing
    for key, queries in report["http"].items():
        assert queries["tile"]["repeated"]["1"]["requests_per_s"] > 0  # driven by the load generator
        if key != servers.HELLO.key:
            assert queries["tile"]["instants"] == 168  # a week of hours, the same for every server
    assert report["http"]["ours"]["quant"]["instants"] == 210_432  # six years of 15-minute intervals
    assert len(report["flight"]) == 6 and all(entry["ratio"] > 0 for entry in report["flight"].values())
    [runs] = [entry["runs"] for entry in report["scale"].values()]
    assert [r["workers"] for r in runs] == [1, 2] and all(r["pss_bytes"] > r["arrays_bytes"] / 2 for r in runs)
    markdown = results.with_suffix(".md").read_text()
    for name in ("http", "latency", "flight", "scale"):
        assert f"({results.stem}-{name}.png)" in markdown and (out / f"{results.stem}-{name}.png").stat().st_size
    assert "## Scale curve" in markdown and "startup / read" in markdown
    assert "answered tile, page, analyst, quant with ours' numbers" in run.stdout


def test_a_server_answering_other_numbers_stops_the_run():
    ours = {"timestamps": ["2024-07-08T05:00:00Z"], "data": [{"hub": "HB_NORTH", "prices": [21.5]}]}
    expected = {}
    assert http_race._check(servers.OURS, "tile", json.dumps(ours), expected) == 1
    same = dict(ours)
    straightforward = next(s for s in servers.SERVERS if s.key == "straightforward")
    assert http_race._check(straightforward, "tile", json.dumps(same), expected) == 1
    other = {**ours, "data": [{"hub": "HB_NORTH", "prices": [21.6]}]}
    with pytest.raises(SystemExit, match="other numbers than ours"):
        http_race._check(straightforward, "tile", json.dumps(other), expected)


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive connections, as wrk's
    nonces = []

    def do_GET(self):
        self.nonces.extend(parse_qs(urlsplit(self.path).query).get("nonce", []))
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.nonces.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/prices?hubs=HB_NORTH"
    server.shutdown()
    server.server_close()


def test_the_python_load_generator_drives_a_server_with_fresh_query_strings(recorder):
    measured = loadgen.drive(recorder, 4, 0.3, fresh=True, generator="python")
    assert measured["requests_per_s"] > 0 and 0 < measured["p50_s"] <= measured["p99_s"]
    assert len(_Recorder.nonces) == len(set(_Recorder.nonces)) > 0  # every query string new
    _Recorder.nonces.clear()
    loadgen.drive(recorder, 1, 0.1, fresh=False, generator="python")
    assert _Recorder.nonces == []  # repeated: the same query string


def test_wrk_asked_for_and_absent_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(loadgen, "WRK", None)
    assert loadgen.choose() == "python"
    with pytest.raises(SystemExit, match="apt-get install wrk"):
        loadgen.choose("wrk")
