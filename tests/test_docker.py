"""docker/Dockerfile and docker/compose.yaml agree with the code, and the image
works. No Docker engine runs here: the Dockerfile's own RUN, ENTRYPOINT, CMD
and HEALTHCHECK commands (all of them docker/image.sh) are run outside Docker,
its paths mapped to temporary folders and its ENV applied, and a linter of our
own checks the rest (dockerfile-parse reads the file)."""
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.flight as flight
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from ercot_fast import config
from ercot_fast.cli import build_parser
from ercot_fast.serve.gunicorn import GRACEFUL_SECONDS
from ercot_fast.serve.supervisor import Supervisor
from serving import fetch, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILE = DockerfileParser(path=str(DOCKER / "Dockerfile"))
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SCRIPT = DOCKER / "image.sh"
IMAGE_SH = "/usr/local/lib/ercot-fast/image.sh"
READ = {env for env, _, _ in config._SERVE_SETTINGS.values()} | {"API_KEYS"}
AWS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}  # the S3 client's, beside the service's own
# what the base image (python:3.11-slim) and the image's user (useradd --home-dir) set
BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
STOP_CHILD_SECONDS = Supervisor.stop.__defaults__[0]


def stages():
    """[[instruction, ...] per FROM], comments left out."""
    found = []
    for item in DOCKERFILE.structure:
        if item["instruction"] == "FROM":
            found.append([])
        if item["instruction"] != "COMMENT" and found:
            found[-1].append(item)
    return found


BUILD, RUNTIME = stages()


def values(stage, name):
    return [item["value"] for item in stage if item["instruction"] == name]


def env_of(stage):
    """The stage's ENV, in order (NAME=value pairs, $VAR left as written)."""
    pairs = {}
    for value in values(stage, "ENV"):
        for word in shlex.split(value):
            name, _, text = word.partition("=")
            pairs[name] = text
    return pairs


def image_sh_steps():
    """The steps docker/image.sh knows (its case labels)."""
    return set(re.findall(r"^([a-z-]+)\)$", SCRIPT.read_text(), re.M))


# -- the linter ------------------------------------------------------------


def test_two_stages_on_one_pinned_base_and_no_compiler_at_run_time():
    [arg] = [item["value"] for item in DOCKERFILE.structure if item["instruction"] == "ARG"]
    name, _, base = arg.partition("=")
    assert re.fullmatch(r"python:3\.11-slim-\w+", base), base  # a tag, never latest; the wheels' Python
    assert values(BUILD, "FROM") == [f"${{{name}}} AS build"] and values(RUNTIME, "FROM") == [f"${{{name}}}"]
    build_runs, runtime_runs = " ".join(values(BUILD, "RUN")), " ".join(values(RUNTIME, "RUN"))
    assert "gcc" in build_runs
    assert not re.search(r"\b(gcc|g\+\+|cc|clang|build-essential|libc6-dev|python3-dev)\b", runtime_runs)
    # the run stage gets wheels from the build stage, nothing else of it
    assert not any("--from" in value for value in values(RUNTIME, "COPY"))
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in runtime_runs


def test_instructions_follow_the_usual_lint_rules():
    instructions = {item["instruction"] for item in DOCKERFILE.structure}
    assert "ADD" not in instructions  # COPY: no URLs, no unpacking
    assert "MAINTAINER" not in instructions
    for stage in (BUILD, RUNTIME):
        for run in values(stage, "RUN"):
            assert not re.search(r"\b(sudo|curl|wget)\b", run), run  # neither is installed
            assert not re.search(r"(^|&&|;)\s*cd\b", run), run  # WORKDIR instead
            if "apt-get install" in run:
                assert "apt-get update" in run and "--no-install-recommends" in run and "-y" in run, run
                assert run.rstrip().endswith("rm -rf /var/lib/apt/lists/*"), run
        for workdir in values(stage, "WORKDIR"):
            assert workdir.startswith("/"), workdir
        for copy in values(stage, "COPY"):
            assert not copy.startswith(". "), "COPY . copies the whole context: name what the build needs"
    for name in ("ENTRYPOINT", "CMD"):
        [value] = values(RUNTIME, name)
        assert isinstance(json.loads(value), list), f"{name} in exec form"
    assert values(RUNTIME, "STOPSIGNAL") == ["SIGTERM"]


def test_the_image_runs_as_a_numeric_non_root_user_to_the_end():
    names = [item["instruction"] for item in RUNTIME]
    user_at = names.index("USER")
    [user] = values(RUNTIME, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert "RUN" not in names[user_at:] and "COPY" not in names[user_at:]
    [useradd] = [run for run in values(RUNTIME, "RUN") if "useradd" in run]
    assert f"--uid {uid}" in useradd and "--system" in useradd
    assert f"--home-dir {BASE_ENV['HOME']}" in useradd


def test_ports_and_environment_are_the_service_s():
    exposed = {int(port) for port in values(RUNTIME, "EXPOSE")[0].split()}
    defaults = [config._SERVE_SETTINGS[name][1] for name in ("json_addr", "flight_addr")] + [config.DEFAULT_STREAM_ADDR]
    assert exposed == {config.split_addr(addr)[1] for addr in defaults}
    env = env_of(RUNTIME)
    assert set(env) - {"PATH", "PYTHONUNBUFFERED"} <= READ
    assert env["DATA_DIR"] == "/data"
    assert env["PATH"] == "/opt/venv/bin:$PATH"


def test_every_command_is_a_step_of_image_sh():
    """RUN, ENTRYPOINT and HEALTHCHECK call docker/image.sh, by steps it has."""
    steps = image_sh_steps()
    [copy] = [value for value in values(RUNTIME, "COPY") if value.startswith("docker/image.sh ")]
    assert copy == f"docker/image.sh {IMAGE_SH}"
    called = [re.search(r"image\.sh (\S+)", run).group(1) for stage in (BUILD, RUNTIME) for run in values(stage, "RUN") if "image.sh" in run]
    assert called == ["wheels", "install", "demo-data"] and set(called) <= steps
    assert json.loads(values(RUNTIME, "ENTRYPOINT")[0]) == ["sh", IMAGE_SH, "start"]
    [healthcheck] = values(RUNTIME, "HEALTHCHECK")
    assert json.loads(healthcheck.split("CMD", 1)[1]) == ["sh", IMAGE_SH, "healthcheck"]
    assert {"start", "healthcheck", "meinheld"} <= steps
    # install.sh (development) builds meinheld with the same step
    assert "sh docker/image.sh meinheld" in (DOCKER / "install.sh").read_text()


def test_image_sh_says_how_to_call_it():
    for args, usage in (([], "usage: sh docker/image.sh wheels DIR | meinheld DIR |"), (["install", "/wheels"], "usage: sh docker/image.sh install DIR VENV")):
        done = subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and usage in done.stderr, done.stderr


def test_cmd_is_a_valid_cli_call():
    args = build_parser().parse_args(json.loads(values(RUNTIME, "CMD")[0]))
    assert args.command == "serve"


def test_the_context_leaves_out_what_is_built_here():
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text()
    for path in ("ercot_fast/kernels/_search.cpython-311-x86_64-linux-gnu.so", "ercot_fast/__pycache__/cli.cpython-311.pyc",
                 "ext/search.c", ".venv", "build"):
        assert ignores(ignored, path), path
    for path in ("ext/shortest.c", "ext/search.pyx", "ercot_fast/cli.py", "setup.py"):
        assert not ignores(ignored, path), path


def ignores(dockerignore, path):
    """Whether ``path`` (relative, /-separated) or a folder above it is left out:
    the .dockerignore patterns used here (no ``!`` exceptions)."""
    patterns = [line.strip() for line in dockerignore.splitlines() if line.strip() and not line.startswith("#")]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        assert not pattern.startswith("!")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern) or (pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.split("/")[-1], pattern[3:])):
                return True
    return False


# -- compose ---------------------------------------------------------------


def ercot_fast_services():
    return {name: service for name, service in COMPOSE["services"].items() if service.get("image") == "ercot-fast"}


def test_compose_builds_the_image_and_passes_only_settings_the_service_reads():
    services = ercot_fast_services()
    assert set(services) == {"ercot-fast", "replica-a", "replica-b"}
    for name, service in services.items():
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert set(service["environment"]) <= READ | AWS, name
        drain = float(service["environment"]["DRAIN_SECONDS"])
        assert service["stop_signal"] == "SIGTERM"
        assert int(service["stop_grace_period"].rstrip("s")) > drain + GRACEFUL_SECONDS + STOP_CHILD_SECONDS, name


def test_compose_single_service_serves_a_read_only_volume_on_the_service_s_ports():
    service = COMPOSE["services"]["ercot-fast"]
    assert "profiles" not in service
    assert service["volumes"][0].endswith(":" + env_of(RUNTIME)["DATA_DIR"] + ":ro")
    ports = {int(mapping.split(":")[1]) for mapping in service["ports"]}
    health = config.split_addr(service["environment"]["HEALTH_ADDR"])[1]
    assert ports == {int(p) for p in values(RUNTIME, "EXPOSE")[0].split()} | {health}


def test_compose_replicas_read_minio_behind_nginx():
    services = COMPOSE["services"]
    profiled = {name for name, service in services.items() if service.get("profiles") == ["replicas"]}
    assert profiled == {"replica-a", "replica-b", "minio", "minio-seed", "nginx"}
    minio_port = "9000"
    for name in ("replica-a", "replica-b"):
        env = services[name]["environment"]
        assert env["DATA_DIR"].startswith("s3://") and env["S3_ENDPOINT"] == f"http://minio:{minio_port}"
        assert float(env["RELOAD_INTERVAL"]) > 0
        # MinIO's root user is the replicas' S3 user
        assert env["AWS_ACCESS_KEY_ID"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
        assert config.parse_locations(env["FLIGHT_ADVERTISE"]) == tuple(
            f"grpc://localhost:{services[r]['ports'][0].split(':')[0]}" for r in ("replica-a", "replica-b"))
        assert services[name]["ports"][0].endswith(":" + env_of(RUNTIME)["FLIGHT_ADDR"].rpartition(":")[2])
        assert services[name]["depends_on"] == {"minio-seed": {"condition": "service_completed_successfully"}}
    bucket = services["replica-a"]["environment"]["DATA_DIR"].removeprefix("s3://")
    assert f"store/{bucket}" in services["minio-seed"]["entrypoint"][2]
    assert services["minio"]["command"] == "server /data"


def test_compose_nginx_fills_the_replicas_template():
    nginx = COMPOSE["services"]["nginx"]
    env = nginx["environment"]
    http_port = config.split_addr(env_of(RUNTIME)["JSON_ADDR"])[1]
    assert {env["REPLICA_A"], env["REPLICA_B"]} == {f"replica-a:{http_port}", f"replica-b:{http_port}"}
    stream_port = config.split_addr(env_of(RUNTIME).get("STREAM_ADDR", config.DEFAULT_STREAM_ADDR))[1]
    assert {env["STREAM_A"], env["STREAM_B"]} == {f"replica-a:{stream_port}", f"replica-b:{stream_port}"}
    assert {f"{env['HTTP_PORT']}:{env['HTTP_PORT']}", f"{env['HTTPS_PORT']}:{env['HTTPS_PORT']}"} == set(nginx["ports"])
    assert "80" not in (env["HTTP_PORT"], env["HTTPS_PORT"])  # the image's default.conf has 80
    [template] = [v for v in nginx["volumes"] if "/etc/nginx/templates/" in v]
    source, target, mode = template.split(":")
    assert source == "./nginx/replicas.conf.template" and target.endswith(".template") and mode == "ro"
    certs = [v for v in nginx["volumes"] if v.split(":")[1] == str(Path(env["TLS_CERT"]).parent)]
    assert certs and Path(env["TLS_KEY"]).parent == Path(env["TLS_CERT"]).parent
    assert nginx["depends_on"] == {r: {"condition": "service_healthy"} for r in ("replica-a", "replica-b")}
    used = set(re.findall(r"\$\{([A-Z_]+)\}", (DOCKER / source).read_text()))
    assert used == set(env), used ^ set(env)


# -- the image's steps, run outside Docker -----------------------------------


class Image:
    """The image's folders as temporary ones here, and its commands with them."""

    def __init__(self, folder):
        self.folder = folder
        self.src, self.venv, self.data, self.workdir = (folder / name for name in ("src", "venv", "data", "workdir"))
        self.wheels = folder / "wheels"
        self.workdir.mkdir()
        self.paths = {"/opt/venv": self.venv, "/data": self.data, "/wheels": self.wheels, IMAGE_SH: SCRIPT, "/src": self.src}

    def here(self, text):
        """``text`` with the image's paths replaced by their folders here."""
        for image_path, path in self.paths.items():
            text = re.sub(rf"(?<![\w/.-]){re.escape(image_path)}(?=/|:|$|\s)", str(path), text)
        return text

    def environment(self, stage, base_path):
        """The environment a command of ``stage`` sees: this machine's, less
        anything that would point at the checkout or set the service, with the
        stage's ENV over it."""
        env = {k: v for k, v in os.environ.items() if k not in READ | AWS | {"PYTHONPATH", "VIRTUAL_ENV", "TMPDIR", "PATH"}}
        if stage is RUNTIME:  # no pip configuration of this machine's (its index, its wheels): only the build's wheels
            env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
            env["PIP_CONFIG_FILE"] = os.devnull
        env["PATH"] = base_path
        for name, value in env_of(stage).items():
            env[name] = self.here(value).replace("$PATH", base_path)
        return env

    def copy_context(self):
        """The build stage's COPY sources, less Dockerfile.dockerignore's patterns."""
        ignored = (DOCKER / "Dockerfile.dockerignore").read_text()
        for value in values(BUILD, "COPY"):
            *sources, target = value.split()
            for source in sources:
                base = ROOT / source
                files = [base] if base.is_file() else [p for p in base.rglob("*") if p.is_file()]
                for file in files:
                    relative = file.relative_to(ROOT).as_posix()
                    if ignores(ignored, relative):
                        continue
                    dest = self.src / (relative if target.endswith("/") or base.is_dir() or target == "./" else target)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, dest)

    def run_steps(self):
        """Every RUN that calls image.sh, in order, as the Dockerfile has it."""
        # the base image's python is the one running these tests (3.11, like the image's)
        base_path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
        for stage in (BUILD, RUNTIME):
            for run in values(stage, "RUN"):
                if "image.sh" not in run:
                    continue
                command = self.here(re.sub(r"--mount=\S+\s+", "", run))
                workdir = self.here(values(stage, "WORKDIR")[0]) if stage is BUILD else "/"
                done = subprocess.run(["sh", "-c", command], cwd=workdir, env=self.environment(stage, base_path),
                                      capture_output=True, text=True, timeout=600)
                assert done.returncode == 0, f"{run}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    def runtime_env(self, **overrides):
        env = self.environment(RUNTIME, BASE_ENV["PATH"])
        env.update(LANG=BASE_ENV["LANG"], HOME=BASE_ENV["HOME"], **overrides)
        return env

    def argv(self, exec_form):
        return [self.here(word) for word in json.loads(exec_form)]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """The image, built once for the module (about 90 s: the wheels, then a virtualenv from them)."""
    built = Image(tmp_path_factory.mktemp("image"))
    built.copy_context()
    built.run_steps()
    return built


def test_the_wheels_are_built_with_the_kernels_compiled(image):
    wheels = sorted(p.name for p in image.wheels.iterdir())
    assert all(name.endswith(".whl") for name in wheels), wheels
    [ours] = [name for name in wheels if name.startswith("ercot_fast-")]
    assert not ours.endswith("-none-any.whl")
    names = zipfile.ZipFile(image.wheels / ours).namelist()
    for kernel in ("_search", "_jsonwrite", "_aggregate"):
        assert any(re.fullmatch(rf"ercot_fast/kernels/{kernel}\.cpython-\d+.*\.so", n) for n in names), kernel
    assert not any(n.endswith((".pyx", ".c")) for n in names)
    assert any(name.startswith("meinheld-1.0.2-") for name in wheels)
    assert not any(name.startswith("greenlet-0.") for name in wheels)


def test_the_run_stage_imports_the_installed_wheel_not_the_source(image):
    done = subprocess.run([str(image.venv / "bin" / "python"), "-c",
                           "import ercot_fast, ercot_fast.kernels as k; print(ercot_fast.__file__); print(all(k.COMPILED.values()))"],
                          cwd="/", env=image.runtime_env(), capture_output=True, text=True, check=True)
    where, compiled = done.stdout.split()
    assert Path(where).is_relative_to(image.venv) and compiled == "True"


def test_the_demo_data_is_read_only(image):
    entries = [image.data, *image.data.rglob("*")]
    assert len(list(image.data.glob("flattened/*.parquet"))) == 18
    assert all(not p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for p in entries)


def test_the_image_serves_reports_healthy_and_stops_on_sigterm(image):
    """ENTRYPOINT + CMD with the image's ENV (the ports on 127.0.0.1, as
    `docker run -e` would set them), the HEALTHCHECK command against it, and
    `docker stop`'s SIGTERM to the process the entrypoint became."""
    port, flight_port = free_port(), free_port()
    env = image.runtime_env(JSON_ADDR=f"127.0.0.1:{port}", FLIGHT_ADDR=f"127.0.0.1:{flight_port}")
    [healthcheck] = values(RUNTIME, "HEALTHCHECK")
    check = image.argv(healthcheck.split("CMD", 1)[1])
    argv = image.argv(values(RUNTIME, "ENTRYPOINT")[0]) + json.loads(values(RUNTIME, "CMD")[0])
    proc = subprocess.Popen(argv, cwd=image.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"

        def answers():
            assert proc.poll() is None, proc.stdout.read()
            try:
                return fetch(base + "/api/ready")[0] == 200
            except OSError:
                return False

        wait_until(answers, "the image's service did not become ready", timeout=120)
        status, headers, body = fetch(base + "/api/health")
        assert status == 200 and json.loads(body)["status"] == "healthy"
        assert headers["Server"] == "ercot-fast"  # meinheld, built by image.sh with our header
        status, _, body = fetch(base + "/api/prices?start_date=2024-07-15&end_date=2024-07-15&hubs=HB_NORTH&price_type=day_ahead")
        assert status == 200, body
        with flight.connect(f"grpc://127.0.0.1:{flight_port}") as client:
            client.wait_for_available(timeout=30)
            [result] = client.do_action(flight.Action("describe", b""))
            assert json.loads(result.body.to_pybytes())["pid"] != proc.pid  # the Flight child answers
        healthy = subprocess.run(check, cwd=image.workdir, env=env, capture_output=True, text=True, timeout=30)
        assert healthy.returncode == 0, healthy.stderr
        # exec, not a shell waiting on it: the entrypoint's process is ercot-fast (PID 1 in the image)
        assert "ercot-fast" in Path(f"/proc/{proc.pid}/cmdline").read_text()
        assert not Path(f"/proc/{proc.pid}/cmdline").read_text().startswith("sh\0")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = proc.stdout.read()
    assert "Traceback" not in output, output
    stopped = subprocess.run(check, cwd=image.workdir, env=env, capture_output=True, text=True, timeout=30)
    assert stopped.returncode == 1 and stopped.stderr.startswith(f"unhealthy: http://127.0.0.1:{port}/api/health"), stopped.stderr
    assert "Traceback" not in stopped.stderr
