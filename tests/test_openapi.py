"""GET /api/openapi.json: a valid OpenAPI 3.1 document (openapi-spec-validator)
that matches what the service does: every route and parameter the code
takes is in it, and schemathesis, driving the real server with generated and
malformed requests (bounded in time), finds no 5xx and no answer that breaks
the document (status codes, content types, headers, schemas)."""
import re
import subprocess
import sys
from pathlib import Path

from openapi_spec_validator import validate

from ercot_fast.api import app as api_app
from ercot_fast.api.resources import BODY_KEYS
from serving import Served

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"


def test_the_document_is_valid_openapi_3_1(client):
    resp = client.simulate_get("/api/openapi.json")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    document = resp.json
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_route_and_parameter_is_documented(client, utc_store):
    document = client.simulate_get("/api/openapi.json").json
    assert sorted(document["paths"]) == sorted(api_app.ROUTES)
    prices = document["paths"]["/api/prices"]
    query = [p["name"] for p in prices["get"]["parameters"] if p["in"] == "query"]
    assert sorted(query) == sorted(BODY_KEYS)
    body = prices["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert sorted(body["properties"]) == sorted(BODY_KEYS) and body["additionalProperties"] is False
    [hubs] = [p for p in prices["get"]["parameters"] if p["name"] == "hubs"]
    assert set(utc_store.settlement_points) <= set(hubs["schema"]["items"]["enum"])


def test_the_documented_example_is_answered(client):
    document = client.simulate_get("/api/openapi.json").json
    params = {}
    for p in document["paths"]["/api/prices"]["get"]["parameters"]:
        if "example" in p:
            params[p["name"]] = ",".join(p["example"]) if isinstance(p["example"], list) else p["example"]
    resp = client.simulate_get("/api/prices", params=params)
    assert resp.status_code == 200 and len(resp.json["timestamps"]) == 24


def test_schemathesis_finds_no_server_error_and_no_schema_violation(utc_dir):
    served = Served(["--data-dir", str(utc_dir), "--workers", "1", "--worker-class", "sync"], {})
    try:
        served.wait_ready()
        run = subprocess.run(
            [SCHEMATHESIS, "run", f"{served.base}/api/openapi.json", "--checks", CHECKS, "--max-examples", "50",
             "--max-time", "45", "--seed", "20210217", "--no-color"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        log = served.stop()
    assert run.returncode == 0, run.stdout[-4000:]
    # a summary such as "3075 generated, 3075 passed" (schemathesis may add a warning, e.g. that
    # most generated bodies were refused: its checks are what counts)
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) > 100, run.stdout[-4000:]
    assert "Traceback" not in log
