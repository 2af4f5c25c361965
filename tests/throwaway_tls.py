"""TLS for the tests and bench/bench_tls.py: a throwaway CA and a server
certificate it signed (``openssl``), and Debian's nginx running
docker/nginx/ercot-fast.conf as documented, with only its ports and paths
changed, on loopback, in a folder of its own."""
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

NGINX_SITE = Path(__file__).resolve().parents[1] / "docker" / "nginx" / "ercot-fast.conf"
# the directives of the documented site that name a port or a file, each found once
LISTEN, UPSTREAM = r"listen\s+443 ssl", r"server\s+127\.0\.0\.1:8080"
CERT, KEY = r"ssl_certificate\s+\S+", r"ssl_certificate_key\s+\S+"


def nginx_binary():
    """Debian's nginx (package nginx), None when it is not installed."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")  # a user's PATH may not have sbin


class ThrowawayCA:
    """``ca`` (the CA certificate clients trust), ``cert`` and ``key`` (the
    server's, for localhost and 127.0.0.1), PEM files in ``folder``."""

    def __init__(self, folder):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.ca, ca_key = folder / "ca.pem", folder / "ca-key.pem"
        self.cert, self.key = folder / "cert.pem", folder / "key.pem"
        request, extensions = folder / "server.csr", folder / "server.ext"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=ercot-fast test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        _openssl("req", *ec, "-keyout", self.key, "-out", request, "-subj", "/CN=localhost")
        extensions.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                              "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                              "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
        _openssl("x509", "-req", "-in", request, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
                 "-extfile", extensions, "-out", self.cert)


def _openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def nginx_conf(folder, port, upstream_addr, cert, key):
    """Write ``folder``/nginx.conf: the documented site on 127.0.0.1:``port``
    in front of ``upstream_addr`` (HOST:PORT), in the foreground, its pid,
    logs and temporary files in ``folder``; returns its path."""
    folder = Path(folder)
    site = NGINX_SITE.read_text()
    for documented, here in ((LISTEN, f"listen 127.0.0.1:{port} ssl"), (UPSTREAM, f"server {upstream_addr}"),
                             (CERT, f"ssl_certificate {cert}"), (KEY, f"ssl_certificate_key {key}")):
        site, found = re.subn(rf"^(\s*){documented};", lambda match: f"{match.group(1)}{here};", site, flags=re.M)
        assert found == 1, f"{NGINX_SITE} no longer has one {documented!r} directive: update {__file__}"
    (folder / "ercot-fast.conf").write_text(site)
    temp = "".join(f"    {kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = folder / "nginx.conf"
    conf.write_text(
        # NOTE: as root (CI), nginx's workers would run as nobody, who cannot write the temporary folders here
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n    access_log off;\n{temp}    include {folder / 'ercot-fast.conf'};\n}}\n"
    )
    return conf


def nginx_command(folder, conf):
    return [nginx_binary(), "-p", str(folder), "-e", str(Path(folder) / "error.log"), "-c", str(conf)]


def start_nginx(folder, port, upstream_addr, cert, key, **popen):
    """nginx running the documented site (``nginx_conf``), in its own process group."""
    conf = nginx_conf(folder, port, upstream_addr, cert, key)
    return subprocess.Popen(nginx_command(folder, conf), start_new_session=True, **popen)


def stop_nginx(proc, timeout=10):
    """SIGQUIT, then SIGKILL after ``timeout`` s; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)  # nginx's graceful stop
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
    return proc.wait()
