"""The scale curve: ``ercot-fast serve`` on 20, 200 and 2,000 settlement points
of six years of 15-minute real-time prices (``scale_data``), with 1 and 2 HTTP
workers: startup (the process started to ``/api/ready`` answering 200), PSS of
all its processes (master, workers, Flight child: the sum of each one's
``/proc/PID/smaps_rollup`` Pss) once ready and after the load below, the
tile's latency (a week of two points, a fresh query string per request), the
pull's (a year of 20 points, also fresh), and the Flight pull of every 15-minute and
hourly price (each record batch dropped as it arrives: the client holds none).

The master's peak RSS (VmHWM: loading, before it hands memory back) says
where this machine's limit is. Baselines of the same run: the seconds pyarrow alone takes to read the same
Parquet files (in a fresh process, after its imports), and the bytes of the
arrays served (the snapshot files every process maps). Targets (issue
"One-command benchmark"): startup within 2x the read, PSS within 1.3x the
arrays plus 300 MB.
"""
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pyarrow.flight as flight

import _harness as harness
import loadgen
import scale_data

POINTS = (20, 200, 2000)
WORKERS = (1, 2)
TILE = "start_date=2024-07-08&end_date=2024-07-14&hubs=HB_NORTH,HB_HOUSTON&price_type=real_time&resolution=15min"
PULL = ("start_date=2023-01-01&end_date=2023-12-31&price_type=real_time&resolution=15min&hubs="
        + ",".join(sorted(harness.SETTLEMENT_POINTS)))
PULLS = 3  # timed HTTP pulls, after one untimed
FLIGHT_DATASETS = ("real_time_15min", "real_time")
STARTUP_TARGET = 2.0  # x the pyarrow read
PSS_TARGET = (1.3, 300 * 2**20)  # x the arrays, plus bytes

_READ = """
import sys, time
from pathlib import Path
import pyarrow.dataset, pyarrow.parquet as pq  # imported before the clock starts: the read is timed
files = sorted(Path(sys.argv[1]).rglob("*.parquet"))
started = time.perf_counter()
tables = [pq.read_table(f) for f in files]
print(time.perf_counter() - started)
"""


def pyarrow_read_seconds(data_dir):
    """Seconds pyarrow alone takes to read every Parquet file of ``data_dir``,
    from the page cache, as ours then reads them (the files' bytes read first:
    neither pays for the disk)."""
    for path in Path(data_dir).rglob("*.parquet"):
        with open(path, "rb") as file:
            while file.read(1 << 24):
                pass
    out = subprocess.run([sys.executable, "-c", _READ, str(data_dir)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def tree(pid):
    """pid and all its descendants."""
    pids = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        pids += tree(int(child))
    return pids


def pss_bytes(pid):
    """PSS summed over ``pid`` and its descendants."""
    total = 0
    for process in tree(pid):
        for line in Path(f"/proc/{process}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


def peak_rss_bytes(pid):
    """The most memory ``pid`` has held at once (VmHWM): the master's is its load's peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise KeyError("VmHWM")


def arrays_bytes(runtime_dir):
    """Bytes of the snapshot files (the arrays every process maps) under ``runtime_dir``."""
    return sum(path.stat().st_size for path in Path(runtime_dir).rglob("store-*/*.arrow"))


def _flight_pull(port):
    """(Arrow bytes, seconds) of every price of FLIGHT_DATASETS, wide, each batch dropped."""
    client = flight.connect(f"grpc://{harness.HOST}:{port}")
    nbytes = 0

    def pull():
        nonlocal nbytes
        for name in FLIGHT_DATASETS:
            reader = client.do_get(flight.Ticket(json.dumps({"dataset": name, "layout": "wide"}).encode()))
            for chunk in reader:
                nbytes += chunk.data.get_total_buffer_size()

    seconds, _ = harness.timed(pull)
    client.close()
    return nbytes, seconds


def measure(data_dir, workers, scratch, generator, quick):
    """One start of ``ercot-fast serve`` on ``data_dir`` with ``workers``."""
    runtime = scratch / f"runtime-{workers}"
    runtime.mkdir(exist_ok=True)
    addr, port = harness.free_addr(), harness.free_port()
    command = harness.serve_command(data_dir, addr, f"{harness.HOST}:{port}", workers, "--runtime-dir", runtime)
    with harness.Server("ercot-fast serve", command, cpus=harness.SERVER_CPUS) as server:
        startup = server.wait_for_http(f"http://{addr}/api/ready", timeout=600, interval=0.05)
        pss_ready = pss_bytes(server.proc.pid)
        tile = loadgen.drive(f"http://{addr}/api/prices?{TILE}", 1, 1 if quick else 2, True, generator)
        pull_url = f"http://{addr}/api/prices?{PULL}&nonce="  # a fresh query string each: no cached answer
        harness.http_get(f"{pull_url}0")
        pulls = [harness.timed(lambda: harness.http_get(f"{pull_url}{i}"))[0] for i in range(1, 2 if quick else PULLS + 1)]
        nbytes, flight_seconds = _flight_pull(port)
        return {
            "workers": workers,
            "startup_s": startup,
            "pss_ready_bytes": pss_ready,
            "pss_bytes": pss_bytes(server.proc.pid),
            "processes": len(tree(server.proc.pid)),
            "master_peak_rss_bytes": peak_rss_bytes(server.proc.pid),
            "arrays_bytes": arrays_bytes(runtime),
            "tile_p50_s": tile["p50_s"],
            "tile_p99_s": tile["p99_s"],
            "pull_s": statistics.median(pulls),
            "flight_bytes": nbytes,
            "flight_gb_per_s": nbytes / flight_seconds / 1e9,
        }


def run(cache, scratch, generator, points=POINTS, quick=False):
    """{points: {"read_s", "parquet_bytes", "runs": [measure per worker count], targets}}."""
    curve = {}
    for count in points:
        data_dir = scale_data.scale_data(cache, count)
        read = pyarrow_read_seconds(data_dir)
        runs = [measure(data_dir, workers, scratch, generator, quick) for workers in WORKERS]
        for run_ in runs:
            run_["startup_vs_read"] = run_["startup_s"] / read
            run_["pss_vs_arrays"] = run_["pss_bytes"] / run_["arrays_bytes"]
            run_["startup_target_met"] = run_["startup_s"] <= STARTUP_TARGET * read
            run_["pss_target_met"] = run_["pss_bytes"] <= PSS_TARGET[0] * run_["arrays_bytes"] + PSS_TARGET[1]
            print(f"  {count:>5} points, {run_['workers']} worker(s): startup {run_['startup_s']:6.1f} s "
                  f"({run_['startup_vs_read']:.2f}x the pyarrow read, {read:.1f} s)  PSS {run_['pss_bytes'] / 2**30:5.2f} GiB "
                  f"({run_['pss_vs_arrays']:.2f}x the arrays, {run_['arrays_bytes'] / 2**30:.2f} GiB)  "
                  f"tile p50 {run_['tile_p50_s'] * 1e3:.2f} ms  pull {run_['pull_s'] * 1e3:.0f} ms  "
                  f"Flight {run_['flight_gb_per_s']:.2f} GB/s", flush=True)
        curve[str(count)] = {
            "read_s": read,
            "parquet_bytes": sum(p.stat().st_size for p in Path(data_dir).rglob("*.parquet")),
            "runs": runs,
        }
    return curve
