"""docker/ercot-fast.service: its keys say what the service needs (a reload is
SIGHUP to the master, a stop SIGTERM to the master alone so that it drains,
hardening, its own user, settings the service reads), checked here always;
and systemd's own `systemd-analyze verify` and `security` where systemd is
installed (.ci/run installs it)."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ercot_fast import config
from ercot_fast.serve.gunicorn import GRACEFUL_SECONDS
from ercot_fast.serve.supervisor import Supervisor

ROOT = Path(__file__).resolve().parents[1]
UNIT_FILE = ROOT / "docker" / "ercot-fast.service"
UNIT_TEXT = UNIT_FILE.read_text()
READ = {env for env, _, _ in config._SERVE_SETTINGS.values()} | {"API_KEYS"}
# where the unit's header installs the service (docker/image.sh install WHEELS VENV)
VENV = "/opt/ercot-fast"


def unit():
    """{section: [(key, value), ...]}: keys may repeat (Environment=)."""
    sections, current = {}, None
    for line in UNIT_TEXT.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


SERVICE = unit()["Service"]


def value(key):
    [found] = [v for k, v in SERVICE if k == key]
    return found


def environment():
    return dict(pair.split("=", 1) for k, v in SERVICE if k == "Environment" for pair in v.split())


def test_reload_is_sighup_to_the_master_and_stop_drains():
    assert value("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert value("KillMode") == "mixed" and value("KillSignal") == "SIGTERM"
    drain = float(environment()["DRAIN_SECONDS"])
    assert drain > 0
    assert int(value("TimeoutStopSec")) > drain + GRACEFUL_SECONDS + Supervisor.stop.__defaults__[0]
    assert value("Type") == "exec" and value("Restart") == "on-failure"


def test_it_runs_the_installed_service_as_its_own_user():
    assert value("ExecStart") == f"{VENV}/bin/ercot-fast serve"
    assert f"sh docker/image.sh install /tmp/ercot-fast-wheels {VENV}" in UNIT_TEXT
    assert value("User") == value("Group") == "ercot-fast"
    assert f"useradd --system --no-create-home --shell /usr/sbin/nologin {value('User')}" in UNIT_TEXT


def test_it_is_hardened():
    for key, expected in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                          "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
                          "RestrictSUIDSGID": "yes", "SystemCallFilter": "@system-service"}.items():
        assert value(key) == expected, key
    assert set(value("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_settings_are_the_service_s_and_the_runtime_folder_is_systemd_s():
    env = environment()
    assert set(env) <= READ, set(env) - READ
    # ProtectSystem=strict: the only folder it may write is its RuntimeDirectory
    assert env["RUNTIME_DIR"] == "%t/" + value("RuntimeDirectory")
    assert value("EnvironmentFile").startswith("-/etc/")  # optional: the defaults serve without it
    # writable (PrivateTmp), as the image's WORKDIR is
    assert value("WorkingDirectory") == "/tmp" == re.findall(r"^WORKDIR (\S+)$", (ROOT / "docker" / "Dockerfile").read_text(), re.M)[-1]
    for name in ("JSON_ADDR", "FLIGHT_ADDR"):
        default = config._SERVE_SETTINGS[name.lower()][1]
        assert config.split_addr(env[name])[1] == config.split_addr(default)[1] > 1024  # no capability needed
    assert unit()["Install"] == [("WantedBy", "multi-user.target")]


def systemd_analyze():
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package; .ci/run installs it)")
    return found


def test_systemd_analyze_verify_finds_nothing(tmp_path):
    """The unit as written, its ExecStart on the ercot-fast installed here:
    verify checks that the command exists. It exits 0 even for an unknown key
    or a bad value (it only says so), so its output must be empty."""
    here = tmp_path / "ercot-fast.service"
    here.write_text(UNIT_TEXT.replace(VENV, sys.prefix))
    done = subprocess.run([systemd_analyze(), "verify", str(here)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and "Failed to" in done.stderr and "ercot-fast.service" not in done.stderr:
        pytest.skip(f"systemd-analyze verify cannot run here: {done.stderr.strip()}")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    broken = tmp_path / "broken.service"
    broken.write_text(here.read_text().replace("KillMode=mixed", "KillMode=mixd"))
    complaint = subprocess.run([systemd_analyze(), "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "kill mode" in complaint.stderr  # what would fail the check above


def test_systemd_analyze_security_rates_it_ok():
    """An exposure of at most 2.0 of 10 ("OK"; 1.5 when written)."""
    done = subprocess.run([systemd_analyze(), "security", "--offline=yes", "--threshold=20", str(UNIT_FILE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert re.search(r"Overall exposure level for ercot-fast\.service: (?:[01]\.\d|2\.0) ", done.stdout)
