"""What live-price subscribers cost, side by side in one run: the dashboard
tile's requests/s (wrk) with no subscriber and with N idle Server-Sent Events
subscribers of /api/stream (default 1,000) connected to the same service; then
how long a reload's new intervals take to reach all N.

One HTTP worker and the stream's child pinned to CPU 0 (the whole service),
wrk and the subscribers (one asyncio loop in this process) on CPU 1. Rounds
alternate the two variants (the subscribers connect before and leave after
each round with them); the medians are compared, and each round's pair. The
stream child's own CPU time during those rounds (/proc) and the memory each
subscriber adds to it (smaps_rollup's private bytes) are noted beside.

Delivery: the demo data is served without its last three day-ahead hours;
the file is written whole and the master SIGHUPed; each subscriber notes when
its event arrives. Times are from the publish (the instant the master bumps the
shared store's generation, watched in --runtime-dir's mapped counter: what the
service controls) and from the SIGHUP (which adds the reload's load of the
data directory).

    python bench/bench_stream.py [--subscribers 1000] [--duration 5] [--rounds 5] [--out bench/results/stream.json]
"""
import argparse
import asyncio
import mmap
import os
import shutil
import signal
import statistics
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

import _harness as harness
from loadgen import add_wrk_options, wrk
from ercot_fast.demo import write_demo_data

STREAM = "/api/stream?price_type=day_ahead&hubs=HB_NORTH,HB_HOUSTON"
HELD_BACK = 3  # newest day-ahead hours written only for the reload


class Subscribers:
    """N SSE connections on one asyncio loop in a thread of this process."""

    def __init__(self, addr, count):
        self.host, port = addr.rsplit(":", 1)
        self.port = int(port)
        self.count = count
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connections = []
        self.events = []  # monotonic arrival of each subscriber's first event

    def _run(self, coroutine, timeout=120):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def connect(self):
        self.events = []
        self.connections = self._run(self._connect_all())

    async def _connect_all(self):
        connections = []
        for start in range(0, self.count, 100):  # in batches: the listen backlog
            connections += await asyncio.gather(*(self._connect() for _ in range(start, min(self.count, start + 100))))
        return connections

    async def _connect(self):
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(f"GET {STREAM} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        await reader.readuntil(b": connected\n\n")
        task = asyncio.get_running_loop().create_task(self._wait_for_event(reader))
        return writer, task

    async def _wait_for_event(self, reader):
        await reader.readuntil(b"event: ")
        self.events.append(time.monotonic())

    def wait_for_events(self, timeout=60):
        deadline = time.monotonic() + timeout
        while len(self.events) < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.events)

    def disconnect(self):
        async def close_all():
            for writer, task in self.connections:
                task.cancel()
                writer.close()
        self._run(close_all())
        self.connections = []

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def generation_counter(runtime_dir):
    """The master's mapped generation counter (``store.shared``) in ``runtime_dir``."""
    [folder] = Path(runtime_dir).glob("ercot-fast-*")
    with open(folder / "generation", "rb") as file:
        return mmap.mmap(file.fileno(), 8, access=mmap.ACCESS_READ)


def watch_publish(counter):
    """Start watching ``counter``; returns a function giving the monotonic time it moved (or None)."""
    before = counter[:8]
    moved = []

    def watch():
        deadline = time.monotonic() + 120
        while counter[:8] == before and time.monotonic() < deadline:
            time.sleep(0.0005)
        moved.append(time.monotonic())

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return lambda: (thread.join(130), moved[0] if moved else None)[1]


def hold_back(data_dir):
    """Serve without the newest HELD_BACK day-ahead hours; returns the function that writes them."""
    path = sorted((Path(data_dir) / "flattened").glob("DA_prices_*.parquet"))[-1]
    whole = pq.read_table(path)
    times = whole.column(0)
    pq.write_table(whole.filter(pc.less(times, times[-HELD_BACK])), path)

    def write_them():
        pq.write_table(whole, path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)

    return write_them


def stream_child(master_pid):
    """The pid of the service's stream child (process name ercot-stream)."""
    for pid in os.listdir("/proc"):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "ercot-stream" and \
                    Path(f"/proc/{pid}/stat").read_text().split()[3] == str(master_pid):
                return int(pid)
        except (OSError, IndexError):
            continue
    raise RuntimeError("no ercot-stream child")


def cpu_seconds(pid):
    """User and system CPU seconds ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def private_bytes(pid):
    """Memory ``pid`` holds of its own (Private_Clean + Private_Dirty of smaps_rollup): not the pages it shares."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return sum(int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith(("Private_Clean:", "Private_Dirty:")))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_wrk_options(parser)
    parser.add_argument("--subscribers", type=int, default=1000, help="idle SSE subscribers (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the two variants (default 5)")
    parser.add_argument("--out", default=str(harness.RESULTS / "stream.json"))
    args = parser.parse_args()
    load_average = os.getloadavg()  # NOTE: other work on the machine moves the requests/s; the ratios less
    if harness.CLIENT_CPUS:
        os.sched_setaffinity(0, harness.CLIENT_CPUS)  # the subscribers' loop beside wrk, off the service's CPU
    with harness.scratch("bench-stream-") as scratch:
        # NOTE: a copy: the newest hours are held back and written again
        data_dir = shutil.copytree(args.data_dir, scratch / "data") if args.data_dir else \
            harness.data_dir(None, scratch, write_demo_data)
        write_them = hold_back(data_dir)
        addr, stream_addr = harness.free_addr(), harness.free_addr()
        runtime = scratch / "run"
        runtime.mkdir()
        serve = harness.serve_command(data_dir, addr, harness.free_addr(), 1, "--runtime-dir", runtime,
                                      stream_addr=stream_addr)
        with harness.Server("ercot-fast", serve, cpus=harness.SERVER_CPUS) as server:
            server.wait_for_http(f"http://{addr}/api/health")
            subscribers = Subscribers(stream_addr, args.subscribers)
            url = f"http://{addr}/api/prices?{harness.QUERIES['tile']}"
            child = stream_child(server.proc.pid)
            rounds = {"0 subscribers": [], f"{args.subscribers} subscribers": []}
            child_cpu = []  # the stream child's CPU seconds during each round with subscribers
            memory = 0.0  # the most a round's subscribers added (later rounds reuse memory the first freed)
            for _ in range(args.rounds):
                for variant, measured in rounds.items():
                    if measured is not rounds["0 subscribers"]:
                        before = private_bytes(child)
                        subscribers.connect()
                        memory = max(memory, (private_bytes(child) - before) / args.subscribers)
                    wrk(url, args.connections, args.warmup)
                    cpu = cpu_seconds(child)
                    measured.append(wrk(url, args.connections, args.duration))
                    if measured is not rounds["0 subscribers"]:
                        child_cpu.append(cpu_seconds(child) - cpu)
                        subscribers.disconnect()
                    m = measured[-1]
                    print(f"  {variant:<18} {m['requests_per_s']:>9.0f} req/s  p50 {m['p50_s'] * 1e3:.2f} ms  "
                          f"p99 {m['p99_s'] * 1e3:.2f} ms", flush=True)
            medians = {name: statistics.median(m["requests_per_s"] for m in runs) for name, runs in rounds.items()}
            none, some = rounds
            tile = {
                "requests_per_s_median": medians,
                "requests_per_s_each_round": {name: [round(m["requests_per_s"]) for m in runs] for name, runs in rounds.items()},
                "p99_s_median": {name: statistics.median(m["p99_s"] for m in runs) for name, runs in rounds.items()},
                "with_vs_without_median": medians[some] / medians[none],
                "with_vs_without_each_round": [b["requests_per_s"] / a["requests_per_s"] for a, b in zip(rounds[none], rounds[some])],
                "stream_child_cpu_share_during_rounds": max(child_cpu) / args.duration,
                "stream_child_bytes_per_subscriber": memory,
            }

            subscribers.connect()
            published = watch_publish(generation_counter(runtime))
            write_them()
            hup = time.monotonic()
            os.kill(server.proc.pid, signal.SIGHUP)
            arrivals = subscribers.wait_for_events()
            publish = published()
            subscribers.disconnect()
            subscribers.close()
        from_publish = sorted(t - publish for t in arrivals)
        from_hup = sorted(t - hup for t in arrivals)
    delivery = {
        "subscribers": args.subscribers,
        "received": len(arrivals),
        "from_publish_s": {"p50": statistics.median(from_publish), "max": from_publish[-1], "min": from_publish[0]},
        "from_sighup_s": {"p50": statistics.median(from_hup), "max": from_hup[-1]},
    }
    print(f"tile with {args.subscribers} subscribers: {tile['with_vs_without_median']:.3f}x of none (medians; each round "
          f"{', '.join(f'{r:.2f}' for r in tile['with_vs_without_each_round'])}); stream child CPU "
          f"{tile['stream_child_cpu_share_during_rounds']:.2%} of a round, {tile['stream_child_bytes_per_subscriber'] / 1024:.1f} KB "
          f"per subscriber; event to {len(arrivals)}/{args.subscribers} subscribers: p50 {delivery['from_publish_s']['p50'] * 1e3:.0f} ms, "
          f"max {delivery['from_publish_s']['max'] * 1e3:.0f} ms after the publish "
          f"({delivery['from_sighup_s']['max']:.2f} s after SIGHUP)")
    report = {
        "machine": harness.machine("cpus", "processor", "python"),
        "load_average_at_start": load_average,
        "command": harness.command_line("bench_stream.py", args, skip=("out",)),
        "tile": tile,
        "delivery": delivery,
    }
    harness.write_results(args.out, report)


if __name__ == "__main__":
    main()
