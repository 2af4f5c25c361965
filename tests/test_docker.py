"""The Docker and Kubernetes files agree with the code (no Docker engine runs
here: what they run is run outside Docker by CI and the other tests)."""
import json
import re
import subprocess
import sys
from pathlib import Path

from ercot_fast import config
from ercot_fast.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
KUBERNETES = (ROOT / "docker" / "kubernetes.yaml").read_text()
COMPOSE = (ROOT / "docker" / "compose.yaml").read_text()


def instruction(name):
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines() if line.startswith(name + " ")]


def test_entrypoint_and_cmd_are_valid_cli_calls():
    entrypoint = json.loads(instruction("ENTRYPOINT")[0])
    command = json.loads(instruction("CMD")[-1])
    assert entrypoint == ["ercot-fast"]
    args = build_parser().parse_args(command)
    assert args.command == "serve"


def test_environment_names_are_the_ones_the_service_reads():
    env_block = DOCKERFILE[DOCKERFILE.rindex("ENV PATH") :].split("RUN")[0]
    names = set(re.findall(r"\b([A-Z_]+)=", env_block)) - {"PATH", "PYTHONUNBUFFERED"}
    read = {env for env, _, _ in config._SERVE_SETTINGS.values()}
    assert names and names <= read
    for manifest in (KUBERNETES, COMPOSE):
        for name in re.findall(r"name: ([A-Z_]+)\b", manifest) + re.findall(r"^\s+([A-Z_]+):", manifest, re.M):
            assert name in read, name


def test_ports_and_probes_match_the_service():
    http_port = config.split_addr(config._SERVE_SETTINGS["json_addr"][1])[1]
    exposed = {int(p) for p in instruction("EXPOSE")[0].split()}
    assert http_port in exposed
    assert f"containerPort: {http_port}" in KUBERNETES and f'"{http_port}:{http_port}"' in COMPOSE
    assert "127.0.0.1:8080/api/health" in DOCKERFILE
    assert KUBERNETES.count("path: /api/health") == 1  # liveness


def env_value(manifest, name):
    [value] = re.findall(rf"name: {name}, value: \"?([^\"}}]+)\"?}}", manifest)
    return value


def probe(manifest, kind):
    """The text of one probe of the manifest (up to the next key at its indentation)."""
    match = re.search(rf"^( +){kind}:\n((?:\1 .*\n)+)", manifest, re.M)
    assert match, f"no {kind}"
    return match.group(2)


def test_kubernetes_probes_readiness_health_and_grpc_and_waits_for_the_drain():
    from ercot_fast.serve.gunicorn import GRACEFUL_SECONDS
    from ercot_fast.serve.grpc_health import FLIGHT_SERVICE
    from ercot_fast.serve.supervisor import Supervisor

    assert "httpGet: {path: /api/ready, port: http}" in probe(KUBERNETES, "readinessProbe")
    assert "httpGet: {path: /api/health, port: http}" in probe(KUBERNETES, "livenessProbe")
    health_port = config.split_addr(env_value(KUBERNETES, "HEALTH_ADDR"))[1]
    assert f"containerPort: {health_port}" in KUBERNETES
    grpc_probes = re.findall(r"grpc: \{port: (\d+)(?:, service: ([\w.]+))?\}", KUBERNETES)
    assert grpc_probes and all(int(port) == health_port and service in ("", FLIGHT_SERVICE) for port, service in grpc_probes)
    drain = float(env_value(KUBERNETES, "DRAIN_SECONDS"))
    assert drain > 0
    stop_child = Supervisor.stop.__defaults__[0]
    grace = int(re.search(r"terminationGracePeriodSeconds: (\d+)", KUBERNETES).group(1))
    assert grace > drain + GRACEFUL_SECONDS + stop_child
    compose_grace = int(re.search(r"stop_grace_period: (\d+)s", COMPOSE).group(1))
    assert compose_grace > float(re.search(r'DRAIN_SECONDS: "([\d.]+)"', COMPOSE).group(1)) + GRACEFUL_SECONDS + stop_child
    compose_health = config.split_addr(re.search(r'HEALTH_ADDR: "([^"]+)"', COMPOSE).group(1))[1]
    assert f'"{compose_health}:{compose_health}"' in COMPOSE


def test_image_builds_with_the_install_script_and_demo_data():
    runs = " ".join(instruction("RUN"))
    assert "sh docker/install.sh --prod" in runs
    assert "ercot-fast demo-data /opt/demo-data" in runs
    assert "DATA_DIR=/opt/demo-data" in DOCKERFILE


def test_the_image_demo_data_command_works(tmp_path):
    """The Dockerfile's `ercot-fast demo-data DIR` step, run here."""
    script = Path(sys.executable).parent / "ercot-fast"
    subprocess.run([str(script), "demo-data", str(tmp_path / "demo")], check=True, capture_output=True, timeout=120)
    assert len(list((tmp_path / "demo" / "flattened").glob("*.parquet"))) == 18
