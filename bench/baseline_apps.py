"""The baselines PERF.md names, served by the same gunicorn worker as ours.

- ``hello``: a hello-world Falcon app returning a fixed small JSON body (the ceiling).
- ``straightforward``: /api/prices for day_ahead and real_time (hourly, or
  ``resolution=15min``) written the obvious way, numpy.searchsorted on the
  same in-memory store plus orjson.dumps(..., option=OPT_SERIALIZE_NUMPY).

Run with ``gunicorn --chdir bench baseline_apps:hello`` (or ``:straightforward``
with BENCH_DATA_DIR set to a data directory).
"""
import datetime as dt
import os

import falcon
import numpy as np
import orjson


class Hello:
    def on_get(self, req, resp):
        resp.data = b'{"hello":"world"}'
        resp.content_type = "application/json"


def _instant(text, end):
    if len(text) == 10:  # a bare date: Central market day, as in ours
        from ercot_fast.timeutil import market_day_start

        day = dt.date.fromisoformat(text)
        return market_day_start(day + dt.timedelta(days=1)) - 1 if end else market_day_start(day)
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


class StraightforwardPrices:
    def __init__(self, data_dir):
        from ercot_fast.store.load import load_store

        store = load_store(data_dir)
        self.datasets = {
            name: (store.datasets[name].timestamps,
                   {sp: array.to_numpy(zero_copy_only=False) for sp, array in store.datasets[name].columns.items()})
            for name in ("day_ahead", "real_time", "real_time_15min")
        }

    def on_get(self, req, resp):
        name = "day_ahead" if req.get_param("price_type", default="day_ahead") in ("day_ahead", "da") else "real_time"
        if req.get_param("resolution") == "15min":
            name = "real_time_15min"
        timestamps, columns = self.datasets[name]
        start = _instant(req.get_param("start_date", required=True), end=False)
        end = _instant(req.get_param("end_date", required=True), end=True)
        hubs = req.get_param("hubs", required=True).split(",")
        lo = int(np.searchsorted(timestamps, start, "left"))
        hi = int(np.searchsorted(timestamps, end, "right"))
        stamps = np.datetime_as_string(timestamps[lo:hi].astype("datetime64[ms]"), unit="s")
        body = {
            "timestamps": [s + "Z" for s in stamps.tolist()],
            "data": [{"hub": h, "prices": columns[h][lo:hi]} for h in hubs],
        }
        resp.data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)  # NaN -> null
        resp.content_type = "application/json"


hello = falcon.App()
hello.add_route("/", Hello())

if os.environ.get("BENCH_DATA_DIR"):
    straightforward = falcon.App()
    straightforward.req_options.auto_parse_qs_csv = False
    straightforward.add_route("/api/prices", StraightforwardPrices(os.environ["BENCH_DATA_DIR"]))
