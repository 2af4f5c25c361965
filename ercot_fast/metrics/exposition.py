"""The Prometheus text of the service's metrics (``GET /metrics``): the
counters of every process added up (``metrics.counters``), and the gauges
of the loaded store, in prometheus-client's exposition format."""
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import generate_latest

from ercot_fast.metrics.counters import BUCKETS

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"
#: name -> (type, help, label names); counters are named without their _total
METRICS = {
    "ercot_fast_http_requests": (COUNTER, "HTTP requests answered, by route (- for a path that is no route), "
                                          "status and the path that answered (fastpath or falcon)", ("route", "status", "path")),
    "ercot_fast_http_request_duration_seconds": (HISTOGRAM, "time to answer an HTTP request, by route", ("route",)),
    "ercot_fast_http_response_bytes": (COUNTER, "HTTP body bytes sent, by route", ("route",)),
    "ercot_fast_response_cache_hits": (COUNTER, "price answers whose body came from the response cache", ()),
    "ercot_fast_response_cache_misses": (COUNTER, "price answers whose body was made (the cache did not hold it)", ()),
    "ercot_fast_response_cache_hit_bytes": (COUNTER, "body bytes served from the response cache", ()),
    "ercot_fast_response_cache_bytes": (GAUGE, "bytes the response caches of the HTTP workers hold", ()),
    "ercot_fast_rate_limited": (COUNTER, "requests refused by the rate limit, by protocol (http, flight)", ("protocol",)),
    "ercot_fast_flight_calls": (COUNTER, "Arrow Flight calls completed, by method and gRPC status", ("method", "status")),
    "ercot_fast_flight_call_duration_seconds": (HISTOGRAM, "time of an Arrow Flight call, by method", ("method",)),
    "ercot_fast_flight_rows": (COUNTER, "rows of the Arrow streams Flight started sending (DoGet)", ("method",)),
    "ercot_fast_flight_bytes": (COUNTER, "Arrow bytes of the streams Flight started sending (DoGet)", ("method",)),
    "ercot_fast_reloads": (COUNTER, "reloads of the data directory (SIGHUP, --reload-interval, POST /api/admin/reload, "
                                    "the Flight action reload), by outcome: published, refused, failed", ("outcome",)),
    "ercot_fast_reload_requests": (COUNTER, "reloads asked for by API callers, by protocol (http, flight)", ("protocol",)),
    "ercot_fast_data_dir_checks": (COUNTER, "looks at the data directory for added, changed or removed price files "
                                            "(--reload-interval), by result: unchanged, changed, failed", ("result",)),
    "ercot_fast_store_published_timestamp_seconds": (GAUGE, "when the store served now was published (Unix seconds): "
                                                            "at startup and at each reload", ()),
    "ercot_fast_fetch_runs": (COUNTER, "runs of the fetcher (serve --fetch), by outcome: ok, failed (a listing, "
                                       "download or ingest failed: tried again next run)", ("outcome",)),
    "ercot_fast_fetch_documents": (COUNTER, "ERCOT documents the fetcher downloaded and ingested (fetched) or "
                                            "skipped as corrupt", ("outcome",)),
    "ercot_fast_fetch_failures": (COUNTER, "listings, downloads and ingests of the fetcher that failed", ()),
    "ercot_fast_fetch_bytes": (COUNTER, "bytes of the documents the fetcher ingested", ()),
    "ercot_fast_fetch_values": (COUNTER, "prices the fetcher's ingests added, or changed (re-published)", ("change",)),
    "ercot_fast_fetch_last_success_timestamp_seconds": (GAUGE, "when the last fetch run without a failure ended "
                                                               "(Unix seconds)", ()),
    "ercot_fast_processes": (GAUGE, "processes of the service alive, by role (master, http, flight, fetch)", ("role",)),
    "ercot_fast_store_rows": (GAUGE, "instants loaded, by data set", ("dataset",)),
    "ercot_fast_store_series": (GAUGE, "series (settlement points, products) loaded, by data set", ("dataset",)),
    "ercot_fast_store_bytes": (GAUGE, "bytes of the loaded prices and timestamps, by data set", ("dataset",)),
    "ercot_fast_store_newest_timestamp_seconds": (GAUGE, "the newest instant loaded (Unix seconds), by data set: "
                                                         "time() minus this is how stale it is", ("dataset",)),
    "ercot_fast_store_synthetic": (GAUGE, "1 when the service serves the built-in synthetic demo data", ()),
}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the classic text format, what every Prometheus reads


def store_gauges(store):
    """{(name, labels): value} of the loaded ``store``."""
    gauges = {("ercot_fast_store_synthetic", ()): int(bool(store.synthetic))}
    for name, dataset in store.datasets.items():
        labels = (("dataset", name),)
        gauges[("ercot_fast_store_rows", labels)] = len(dataset)
        gauges[("ercot_fast_store_series", labels)] = len(dataset.columns)
        gauges[("ercot_fast_store_bytes", labels)] = dataset.timestamps.nbytes + sum(c.nbytes for c in dataset.columns.values())
        if len(dataset):
            gauges[("ercot_fast_store_newest_timestamp_seconds", labels)] = int(dataset.timestamps[-1]) / 1000
    return gauges


def text(counts, gauges, histograms):
    """The Prometheus text (bytes) of added-up series."""
    return generate_latest(_Collected(counts, gauges, histograms))


class _Collected:
    """A prometheus-client collector of fixed values."""

    def __init__(self, counts, gauges, histograms):
        self._values = {COUNTER: counts, GAUGE: gauges, HISTOGRAM: histograms}

    def collect(self):
        for name, (kind, help_text, label_names) in METRICS.items():
            series = sorted((labels, value) for (metric, labels), value in self._values[kind].items() if metric == name)
            if kind == COUNTER:
                family = CounterMetricFamily(name, help_text, labels=label_names)
            elif kind == GAUGE:
                family = GaugeMetricFamily(name, help_text, labels=label_names)
            else:
                family = HistogramMetricFamily(name, help_text, labels=label_names)
            for labels, value in series:
                values = [v for _, v in labels]
                if kind == HISTOGRAM:
                    cumulative, running = [], 0
                    for bound, count in zip((*map(str, BUCKETS), "+Inf"), value[:-1]):
                        running += count
                        cumulative.append((bound, running))
                    family.add_metric(values, cumulative, value[-1])
                else:
                    family.add_metric(values, value)
            yield family
