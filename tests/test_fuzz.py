"""Fuzzing the real server, bounded: bench/fuzz.py (seeded generation of
routes, methods, parameters, bodies and raw request lines over HTTP; tickets,
descriptors and actions over Flight) against `ercot-fast serve` on tests/data's
genuine cut. No 5xx, nothing but JSON outside the documented server-layer
rejections, no traceback, path or type name, and the service healthy after."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[1] / "bench" / "fuzz.py"


@pytest.mark.parametrize("worker_class", ["meinheld", "sync"])
def test_fuzzed_requests_get_clear_answers_and_the_service_keeps_serving(fixture_utc_dir, tmp_path, worker_class):
    out = tmp_path / "fuzz.json"
    run = subprocess.run(
        [sys.executable, str(FUZZ), "--data-dir", str(fixture_utc_dir), "--requests", "3000", "--flight-requests", "500",
         "--worker-class", worker_class, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(out.read_text())
    http, flight = report["http"], report["flight"]
    assert run.returncode == 0 and report["clean"], json.dumps(report, indent=1)[:4000]
    assert http["requests"] == 3000 and http["5xx"] == http["not_json"] == http["leaks"] == 0
    assert http["healthy_after"] and report["server_alive_after"]
    assert http["statuses"].get("200", 0) > 100 and http["statuses"].get("400", 0) > 100  # real queries and errors both
    assert flight["requests"] == 500 and flight["leaks"] == flight["other_errors"] == 0 and flight["healthy_after"]
