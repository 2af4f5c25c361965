"""docker/k8s/ is valid Kubernetes (kubernetes-validate's schemas, which the
package carries: no network) and agrees with the code: ports, probes,
setting names and values, mounted files, the image's user, the drain."""
import json
import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, all_versions

from ercot_fast import config
from ercot_fast.access import keys
from ercot_fast.cli import build_parser
from ercot_fast.serve.grpc_health import SERVICES
from ercot_fast.serve.gunicorn import GRACEFUL_SECONDS
from ercot_fast.serve.supervisor import Supervisor
from throwaway_tls import ThrowawayCA

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "docker" / "k8s"
DOCS = [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]
READ = {env for env, _, _ in config._SERVE_SETTINGS.values()} | {"API_KEYS"}
AWS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}
# the oldest Kubernetes the manifests are for (grpc probes: 1.27), and the newest the package knows
OLDEST = "1.29"
# the newest run of `python -m bench`: its scale curve measured memory at three sizes
SCALE = json.loads(sorted((ROOT / "bench" / "results").glob("20*-*.json"))[-1].read_text())["scale"]


def one(kind, name=None):
    [doc] = [d for d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


DEPLOYMENT = one("Deployment")
POD = DEPLOYMENT["spec"]["template"]["spec"]
[CONTAINER] = POD["containers"]
SETTINGS = one("ConfigMap")["data"]
SECRETS = {d["metadata"]["name"]: d for d in DOCS if d["kind"] == "Secret"}


def port(name):
    [number] = [p["containerPort"] for p in CONTAINER["ports"] if p["name"] == name]
    return number


def mebibytes(quantity):
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()
    return int(number) * (1024 if unit == "Gi" else 1)


def mounted(path):
    """The Secret and key a file path of the container is, through its volume mounts."""
    path = Path(path)
    [mount] = [m for m in CONTAINER["volumeMounts"] if path.parent == Path(m["mountPath"])]
    [volume] = [v for v in POD["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    items = {i["path"]: i["key"] for i in secret.get("items", [])} or {k: k for k in SECRETS[secret["secretName"]]["stringData"]}
    return secret["secretName"], items[path.name]


def test_the_schemas_are_in_the_package():
    versions = all_versions()
    assert OLDEST in {v.rsplit(".", 1)[0] for v in versions}
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    assert (folder / f"v{versions[-1]}-local-strict" / "deployment-apps-v1.json").is_file()


@pytest.mark.parametrize("version", [OLDEST, all_versions()[-1]])
def test_every_manifest_validates_strictly(version):
    kinds = set()
    for doc in DOCS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except SchemaNotFoundError as exc:
            pytest.fail(exc.message)
        kinds.add(doc["kind"])
    assert kinds == {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap", "Secret"}


def test_the_objects_select_the_deployment_s_pods():
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert DEPLOYMENT["spec"]["selector"]["matchLabels"] == labels
    assert one("Service")["spec"]["selector"] == labels
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == labels
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT["metadata"]["name"]}
    assert hpa["minReplicas"] == DEPLOYMENT["spec"]["replicas"] == 3 < hpa["maxReplicas"]
    [metric] = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"  # a utilization of the CPU request
    assert "cpu" in CONTAINER["resources"]["requests"]
    assert one("PodDisruptionBudget")["spec"]["maxUnavailable"] < DEPLOYMENT["spec"]["replicas"]


def test_ports_are_the_service_s():
    assert port("http") == config.split_addr(config._SERVE_SETTINGS["json_addr"][1])[1]
    assert port("flight") == config.split_addr(config._SERVE_SETTINGS["flight_addr"][1])[1]
    assert port("health") == config.split_addr(SETTINGS["HEALTH_ADDR"])[1]
    assert port("stream") == config.split_addr(config.DEFAULT_STREAM_ADDR)[1]  # where /api/stream redirects
    service_ports = {p["name"]: p for p in one("Service")["spec"]["ports"]}
    assert set(service_ports) == {"http", "flight", "stream"}
    for name, service_port in service_ports.items():
        assert service_port["targetPort"] == name and service_port["port"] == port(name)


def test_probes_ask_readiness_health_and_grpc_health():
    plain = not SETTINGS.get("TLS_CERT") or config.parse_bool(SETTINGS.get("PLAIN_HTTP", ""), "PLAIN_HTTP")
    scheme = "HTTP" if plain else "HTTPS"
    for probe, path in (("readinessProbe", "/api/ready"), ("livenessProbe", "/api/health")):
        get = CONTAINER[probe]["httpGet"]
        assert (get["path"], get["port"], get.get("scheme", "HTTP")) == (path, "http", scheme), probe
    grpc = CONTAINER["startupProbe"]["grpc"]
    assert grpc["port"] == port("health") and grpc.get("service", "") in SERVICES


def test_every_setting_is_one_the_service_reads_and_valid(tmp_path):
    names = set(SETTINGS) | {e["name"] for e in CONTAINER["env"]}
    sources = CONTAINER["envFrom"]
    assert {"configMapRef": {"name": one("ConfigMap")["metadata"]["name"]}} in sources
    for source in sources:
        if "secretRef" in source:
            names |= set(SECRETS[source["secretRef"]["name"]]["stringData"])
    assert names <= READ | AWS, names - READ - AWS
    # the ConfigMap's values as the service parses them, its files replaced by real ones here
    ca = ThrowawayCA(tmp_path / "tls")
    keys_file = tmp_path / "api-keys"
    keys_file.write_text("ops:" + "k" * keys.MIN_KEY_CHARS + "\n")
    environ = {**SETTINGS, "TLS_CERT": str(ca.cert), "TLS_KEY": str(ca.key), "API_KEYS_FILE": str(keys_file)}
    served = config.serve_config(build_parser().parse_args(["serve"]), environ=environ)
    assert served.workers == int(SETTINGS["WORKERS"]) and served.drain_seconds > 0 and served.reload_interval > 0
    assert served.data_dir.startswith("s3://")


def test_files_come_from_the_mounted_secrets():
    assert mounted(SETTINGS["TLS_CERT"]) == ("ercot-fast-tls", "tls.crt")
    assert mounted(SETTINGS["TLS_KEY"]) == ("ercot-fast-tls", "tls.key")
    assert SECRETS["ercot-fast-tls"]["type"] == "kubernetes.io/tls"
    assert mounted(SETTINGS["API_KEYS_FILE"]) == ("ercot-fast-keys", "api-keys")
    [metrics_key] = [e for e in CONTAINER["env"] if e["name"] == "METRICS_KEY"]
    assert metrics_key["valueFrom"]["secretKeyRef"] == {"name": "ercot-fast-keys", "key": "METRICS_KEY"}


def test_the_placeholder_secrets_are_refused_by_the_service(tmp_path):
    """secrets.yaml as committed must not start a replica open to guessable keys."""
    with pytest.raises(ValueError, match="fewer than"):
        keys.parse(SECRETS["ercot-fast-keys"]["stringData"]["api-keys"], "api-keys")
    args = build_parser().parse_args(["serve"])
    with pytest.raises(SystemExit, match="at least 16"):
        config.serve_config(args, environ={"METRICS_KEY": SECRETS["ercot-fast-keys"]["stringData"]["METRICS_KEY"]})
    for name, text in SECRETS["ercot-fast-tls"]["stringData"].items():
        (tmp_path / name).write_text(text)
    with pytest.raises(SystemExit, match="is not a PEM certificate"):
        config.serve_config(args, environ={"TLS_CERT": str(tmp_path / "tls.crt"), "TLS_KEY": str(tmp_path / "tls.key")})


def test_the_grace_period_covers_the_drain():
    stop_child = Supervisor.stop.__defaults__[0]
    assert POD["terminationGracePeriodSeconds"] > float(SETTINGS["DRAIN_SECONDS"]) + GRACEFUL_SECONDS + stop_child


def test_the_pod_runs_as_the_image_s_user_on_a_read_only_root():
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "docker" / "Dockerfile").read_text(), re.M)
    assert (POD["securityContext"]["runAsUser"], POD["securityContext"]["runAsGroup"]) == tuple(map(int, user.groups()))
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert CONTAINER["securityContext"]["readOnlyRootFilesystem"] is True
    # the shared store goes to the temporary folder (no RUNTIME_DIR): a writable volume there
    assert "RUNTIME_DIR" not in SETTINGS
    [tmp] = [m for m in CONTAINER["volumeMounts"] if m["mountPath"] == "/tmp"]
    [volume] = [v for v in POD["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume


def test_resources_follow_the_measured_memory():
    """The sizes of deployment.yaml's comment, from the scale curve's 200-point
    store: the loader's peak (startup, each reload) and the PSS of serving."""
    runs, workers = SCALE["200"]["runs"], int(SETTINGS["WORKERS"])
    arrays = round(max(r["arrays_bytes"] for r in runs) / 2**20)
    serving = max(r["pss_bytes"] for r in runs) / 2**20
    peak = max(r["master_peak_rss_bytes"] for r in runs) / 2**20
    caches = workers * int(SETTINGS["RESPONSE_CACHE_MB"])
    request = peak + caches
    limit = serving + peak + caches + int(SETTINGS["SQL_MEMORY_MB"])
    resources = CONTAINER["resources"]
    assert mebibytes(resources["requests"]["memory"]) >= request
    assert mebibytes(resources["limits"]["memory"]) >= limit
    # one busy worker per CPU requested; the service's default (the CPU count) would be the node's
    assert int(resources["requests"]["cpu"]) == workers
    assert "cpu" not in resources["limits"]
    tmp = [v for v in POD["volumes"] if v["name"] == "tmp"][0]["emptyDir"]
    assert mebibytes(tmp["sizeLimit"]) >= 2 * arrays  # the store and the one before it
    comment = (K8S / "deployment.yaml").read_text()
    assert f"A = {arrays} MiB" in comment and resources["limits"]["memory"] in comment and resources["requests"]["memory"] in comment
