"""A run of ``python -m bench`` written out: the results JSON, a Markdown
summary (every figure beside its ratio to a baseline of the same run) and PNG
charts (matplotlib, no display needed)."""
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import servers  # noqa: E402

MiB, GiB = 2**20, 2**30


def write(run, folder, stem):
    """Write ``stem``.json, .md and the charts into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / f"{stem}.json"]
    written[0].write_text(json.dumps(run, indent=1) + "\n")
    charts = {}
    for name, chart in (("http", _http_chart), ("latency", _latency_chart), ("flight", _flight_chart),
                        ("scale", _scale_chart)):
        part = run.get("scale" if name == "scale" else "flight" if name == "flight" else "http")
        if part:
            path = folder / f"{stem}-{name}.png"
            chart(part, path)
            charts[name] = path.name
            written.append(path)
    markdown = folder / f"{stem}.md"
    markdown.write_text(summary(run, charts))
    written.insert(1, markdown)
    return written


# --- Markdown ---------------------------------------------------------------------


def summary(run, charts):
    m = run["machine"]
    lines = [
        f"Run of `{run['command']}`, {run['date']}, {run['seconds'] / 60:.1f} minutes end to end.",
        "",
        f"Machine: {m['cpus']} CPUs ({m['processor']}), {m['memory_gib']} GiB, {m['platform']}, Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; load generator {m['load_generator']}; load average at the start "
        + " / ".join(f"{x:.1f}" for x in m["load_average_at_start"]) + " (a machine shared with other work).",
        "",
    ]
    for key, why in run["left_out"].items():
        lines.append(f"Left out: {key}, {why}.")
    if "http" in run:
        lines += _http_tables(run["http"], charts)
    if "flight" in run:
        lines += _flight_table(run["flight"], charts)
    if "scale" in run:
        lines += _scale_table(run["scale"], charts)
    return "\n".join(lines) + "\n"


def _label(key):
    return next(s.label for s in servers.SERVERS if s.key == key)


def _cells(http):
    """(mode, connections) columns present in ``http``."""
    for entry in http.get(servers.HELLO.key, {}).values():
        return [(mode, count) for mode in ("repeated", "fresh") for count in entry.get(mode, {})]
    return []


def _http_tables(http, charts):
    columns = _cells(http)
    ceiling = http.get(servers.HELLO.key, {}).get("tile", {})
    lines = ["## HTTP", "",
             "Requests/s, and in brackets the ratio to the hello-world ceiling measured the same way (the same "
             "connections, repeated or fresh query strings) in this run; p50 / p99 at the widest load. One "
             "worker on CPU 0, the load generator on CPU 1. Every server's answers were checked to be ours' "
             "numbers first.", ""]
    for query in ("tile", "page", "analyst", "quant"):
        rows = [(key, entries[query]) for key, entries in http.items()
                if query in entries and columns and columns[0][0] in entries[query] and key != servers.HELLO.key]
        if not rows:
            continue
        head = " | ".join(f"{mode}, {count} conn." for mode, count in columns)
        lines += [f"**{query}** ({rows[0][1]['body_bytes'] / 1000:,.1f} kB, {rows[0][1]['instants']:,} instants)", "",
                  f"| server | {head} | p50 / p99, {columns[-1][0]}, most conn. |",
                  "|---|" + "---:|" * (len(columns) + 1)]
        for key, entry in rows:
            cells = []
            for mode, count in columns:
                if count not in entry[mode]:
                    cells.append("")  # not measured at that load (http_race.ONE_AT_A_TIME)
                    continue
                if "error" in entry[mode][count]:
                    cells.append(f"failed: {entry[mode][count]['error']}")
                    continue
                rate = entry[mode][count]["requests_per_s"]
                base = ceiling.get(mode, {}).get(count, {}).get("requests_per_s")
                cells.append(f"{rate:,.0f} ({rate / base:.2f})" if base else f"{rate:,.0f}")
            mode = columns[-1][0]
            last = entry[mode][max(entry[mode], key=int)]
            latency = f"{last['p50_s'] * 1e3:.2f} / {last['p99_s'] * 1e3:.2f} ms" if "p50_s" in last else ""
            lines.append(f"| {_label(key)} | " + " | ".join(cells) + f" | {latency} |")
        lines.append("")
    if ceiling:
        cells = " | ".join(f"{ceiling[mode][count]['requests_per_s']:,.0f}" for mode, count in columns)
        lines += [f"Ceiling (hello-world, 17-byte body): {cells} requests/s in the columns above.", ""]
    lines += _http_ratios(http, columns)
    for name in ("http", "latency"):
        if name in charts:
            lines += [f"![{name}]({charts[name]})", ""]
    return lines


def _http_ratios(http, columns):
    """Ours against each baseline, per query, at the widest load of each mode."""
    ours = http.get(servers.OURS.key, {})
    lines = ["| ratio (requests/s, same query, same load) | " + " | ".join(f"{m}, {c} conn." for m, c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for other, what in (("ours_twins", "ours / ours with the pure-Python twins (what the kernels buy)"),
                        ("straightforward", "ours / straightforward numpy + orjson"), ("roapi", "ours / ROAPI")):
        for query, entry in http.get(other, {}).items():
            if query in ours and columns[0][0] in entry and columns[0][0] in ours[query]:
                ratios = [f"{ours[query][m][c]['requests_per_s'] / entry[m][c]['requests_per_s']:.2f}"
                          if "requests_per_s" in entry[m].get(c, {}) and "requests_per_s" in ours[query][m].get(c, {})
                          else "" for m, c in columns]
                lines.append(f"| {what}, {query} | " + " | ".join(ratios) + " |")
    return lines + [""]


def _flight_table(flight, charts):
    lines = ["## Arrow Flight", "",
             "Ours beside a bare `pyarrow.flight` server streaming the same tables (the same batches) from "
             "memory; pulls alternate, medians to the last byte.", "",
             "| ticket, layout | Arrow MB | batches | ours GB/s | bare GB/s | ours / bare |", "|---|---:|---:|---:|---:|---:|"]
    for name, entry in flight.items():
        lines.append(f"| {name} | {entry['ours']['arrow_bytes'] / 1e6:,.1f} | {entry['ours']['batches']} | "
                     f"{entry['ours']['gb_per_s']:.2f} | {entry['bare']['gb_per_s']:.2f} | **{entry['ratio']:.2f}x** |")
    lines.append("")
    if "flight" in charts:
        lines += [f"![flight]({charts['flight']})", ""]
    return lines


def _scale_table(curve, charts):
    lines = ["## Scale curve", "",
             "Six years of 15-minute real-time prices per settlement point (and the hourly means the store "
             "derives). Startup: process start to `/api/ready` 200, against pyarrow alone reading the same "
             "Parquet files (target <= 2x). PSS: all processes, after the tile, the pulls and a Flight pull of "
             "every price, against the bytes of the arrays served (target <= 1.3x + 300 MB). Tile: a week of "
             "two points, a fresh query string per request, p50; pull: a year of 20 points, 15-minute.", "",
             "| points | Parquet | arrays | pyarrow read | workers | startup | startup / read | PSS (ready) | PSS | "
             "PSS / arrays | targets | master's peak | tile p50 | pull | Flight GB/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for points, entry in curve.items():
        for run in entry["runs"]:
            met = ("startup " + ("met" if run["startup_target_met"] else "**not met**") + ", PSS "
                   + ("met" if run["pss_target_met"] else "**not met**"))
            lines.append(
                f"| {int(points):,} | {entry['parquet_bytes'] / MiB:,.0f} MiB | {run['arrays_bytes'] / MiB:,.0f} MiB | "
                f"{entry['read_s']:.1f} s | {run['workers']} | {run['startup_s']:.1f} s | **{run['startup_vs_read']:.2f}x** | "
                f"{run['pss_ready_bytes'] / MiB:,.0f} MiB | {run['pss_bytes'] / MiB:,.0f} MiB | **{run['pss_vs_arrays']:.2f}x** | "
                f"{met} | {run['master_peak_rss_bytes'] / GiB:.1f} GiB | {run['tile_p50_s'] * 1e3:.2f} ms | {run['pull_s'] * 1e3:.0f} ms | {run['flight_gb_per_s']:.2f} |")
    lines.append("")
    if "scale" in charts:
        lines += [f"![scale]({charts['scale']})", ""]
    return lines


# --- charts -----------------------------------------------------------------------


def _bars(axis, groups, series, values, ylabel, log=True):
    """Grouped bars: ``values[s][g]`` for each series s over the groups."""
    width = 0.8 / max(len(series), 1)
    for i, name in enumerate(series):
        axis.bar([g + i * width for g in range(len(groups))], values[i], width, label=name)
    axis.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))])
    axis.set_xticklabels(groups, rotation=20, ha="right", fontsize=7)
    axis.set_ylabel(ylabel)
    if log:
        axis.set_yscale("log")


def _queries(http):
    return [q for q in ("tile", "page", "analyst", "quant")
            if any(q in entries and "repeated" in entries[q] for entries in http.values())]


def _http_chart(http, path):
    queries, columns = _queries(http), _cells(http)
    figure, axes = plt.subplots(1, len(queries), figsize=(4.5 * len(queries), 4), squeeze=False)
    for axis, query in zip(axes[0], queries):
        keys = [k for k, entries in http.items() if "repeated" in entries.get(query, {})]
        values = [[http[k][query][m].get(c, {}).get("requests_per_s", float("nan")) for k in keys] for m, c in columns]
        _bars(axis, [_label(k) for k in keys], [f"{m}, {c} conn." for m, c in columns], values, "requests/s")
        axis.set_title(query)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _latency_chart(http, path):
    queries, columns = _queries(http), _cells(http)
    figure, axes = plt.subplots(1, len(queries), figsize=(4.5 * len(queries), 4), squeeze=False)
    for axis, query in zip(axes[0], queries):
        keys = [k for k, entries in http.items() if "repeated" in entries.get(query, {})]
        series, values = [], []
        for mode, count in columns:  # a load not measured (quant at 64) has no bar
            for stat in ("p50", "p99"):
                series.append(f"{stat}, {mode}, {count} conn.")
                values.append([http[k][query][mode].get(count, {}).get(f"{stat}_s", float("nan")) * 1e3 for k in keys])
        _bars(axis, [_label(k) for k in keys], series, values, "ms")
        axis.set_title(f"{query}: latency")
    axes[0][0].legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _flight_chart(flight, path):
    figure, axis = plt.subplots(figsize=(8, 4))
    names = list(flight)
    _bars(axis, names, ["ours", "bare pyarrow.flight"],
          [[flight[n]["ours"]["gb_per_s"] for n in names], [flight[n]["bare"]["gb_per_s"] for n in names]],
          "GB/s to the last byte", log=False)
    axis.set_title("Arrow Flight pulls")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _scale_chart(curve, path):
    points = [int(p) for p in curve]
    figure, (start, memory, latency) = plt.subplots(1, 3, figsize=(14, 4))
    start.plot(points, [curve[str(p)]["read_s"] for p in points], "k--", marker="o", label="pyarrow reads the Parquet files")
    start.plot(points, [2 * curve[str(p)]["read_s"] for p in points], "k:", label="target: 2x the read")
    memory.plot(points, [curve[str(p)]["runs"][0]["arrays_bytes"] / GiB for p in points], "k--", marker="o",
                label="arrays served")
    memory.plot(points, [(1.3 * curve[str(p)]["runs"][0]["arrays_bytes"] + 300 * MiB) / GiB for p in points], "k:",
                label="target: 1.3x + 300 MB")
    for index, run in enumerate(curve[str(points[0])]["runs"]):
        workers = run["workers"]
        runs = [curve[str(p)]["runs"][index] for p in points]
        start.plot(points, [r["startup_s"] for r in runs], marker="o", label=f"ours, {workers} worker(s)")
        memory.plot(points, [r["pss_bytes"] / GiB for r in runs], marker="o", label=f"PSS, {workers} worker(s)")
        latency.plot(points, [r["tile_p50_s"] * 1e3 for r in runs], marker="o", label=f"tile p50, {workers} worker(s)")
        latency.plot(points, [r["pull_s"] * 1e3 for r in runs], marker="s", label=f"pull (a year, 20 points), {workers} worker(s)")
    for axis, title, unit in ((start, "startup", "s"), (memory, "memory", "GiB"), (latency, "latency", "ms")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("settlement points (six years, 15-minute)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
