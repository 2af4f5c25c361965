// The price dashboard: everything it shows comes from this service's API
// (/api/health, /api/available_hubs, /api/prices, /api/stream). The view is
// in the URL (hubs, type, res, range or start/end) so that it can be shared.
// Instants are plotted as what they are (UTC) and labelled in Central time
// with their offset's name: the repeated fall-back hour is two points, both
// "01:00", one CDT and one CST.
"use strict";

const TZ = "America/Chicago";
const KEY_STORE = "ercot-fast.api-key";
const HOUR = 3600;
const PRESETS = { "24h": 24 * HOUR, "7d": 7 * 24 * HOUR, "1M": 30 * 24 * HOUR };
const COLORS = ["#1d4ed8", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];
const TYPES = { da: { name: "DA", price_type: "day_ahead" }, rt: { name: "RT", price_type: "real_time" } };
const $ = (id) => document.getElementById(id);

const labelTime = new Intl.DateTimeFormat("en-US", {
  timeZone: TZ, year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  hourCycle: "h23", timeZoneName: "short",
});
const centralDay = new Intl.DateTimeFormat("en-CA", { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" });

// what the page shows, for people and for its tests
const dashboard = (window.dashboard = {
  view: null, // {hubs, type, res, range, start, end}
  points: {}, // "DA HB_NORTH" -> Map(epoch s -> price)
  newest: {}, // "da" / "rt" -> the newest epoch s the stream has told of
  chart: null,
  spread: null,
  loaded: false, // the range's prices are drawn
  events: 0, // stream events received
  error: null,
});

function readView() {
  const q = new URLSearchParams(location.search);
  const range = q.get("range") || (q.get("start") ? "custom" : "7d");
  return {
    hubs: (q.get("hubs") || "HB_NORTH,HB_HOUSTON").split(",").filter(Boolean),
    type: ["both", "da", "rt"].includes(q.get("type")) ? q.get("type") : "both",
    res: q.get("res") === "15min" ? "15min" : "hourly",
    range,
    start: q.get("start") || "",
    end: q.get("end") || "",
  };
}

function writeView(view) {
  const q = new URLSearchParams({ hubs: view.hubs.join(","), type: view.type, res: view.res, range: view.range });
  if (view.range === "custom") {
    q.set("start", view.start);
    q.set("end", view.end);
  }
  history.replaceState(null, "", "?" + q.toString().replaceAll("%2C", ","));
}

function kinds(view) {
  return view.type === "both" ? ["da", "rt"] : [view.type];
}

function priceParams(kind, view) {
  const p = { price_type: TYPES[kind].price_type, hubs: view.hubs.join(",") };
  if (kind === "rt" && view.res === "15min") p.resolution = "15min";
  return p;
}

// --- the API ----------------------------------------------------------------------------------

function headers(extra) {
  const key = localStorage.getItem(KEY_STORE);
  return key ? { ...extra, "X-API-Key": key } : { ...extra };
}

class NeedsKey extends Error {}

async function api(path, params) {
  const url = params ? `${path}?${new URLSearchParams(params)}` : path;
  const resp = await fetch(url, { headers: headers() });
  if (resp.status === 401) throw new NeedsKey();
  const body = await resp.json();
  if (!resp.ok && resp.status !== 503) throw new Error(`${body.error}: ${body.details}`);
  return body;
}

function askForKey() {
  $("key-form").hidden = false;
  $("key").focus();
}

// --- the live stream: Server-Sent Events read with fetch (EventSource cannot send X-API-Key) ----

class Follow {
  // One subscription; reconnects with Last-Event-ID after a drop, so nothing is missed.
  constructor(kind, params, onEvent) {
    this.kind = kind;
    this.params = params;
    this.onEvent = onEvent;
    this.lastId = null;
    this.abort = new AbortController();
    this.run();
  }

  stop() {
    this.abort.abort();
  }

  async run() {
    while (!this.abort.signal.aborted) {
      try {
        const params = new URLSearchParams(this.params);
        const extra = { Accept: "text/event-stream" };
        if (this.lastId) extra["Last-Event-ID"] = this.lastId;
        else params.set("backfill", "1"); // the newest interval: where "the last 24 h" ends
        const resp = await fetch(`/api/stream?${params}`, { headers: headers(extra), cache: "no-store", signal: this.abort.signal });
        if (resp.status === 401) return askForKey();
        if (!resp.ok) throw new Error(`the stream answered ${resp.status}`);
        setLive(true);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            this.take(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
      } catch (err) {
        if (this.abort.signal.aborted) return;
        console.warn("live updates:", err.message);
      }
      setLive(false);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }

  take(block) {
    const fields = {};
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, "");
    }
    if (fields.data === undefined) return;
    this.lastId = fields.id;
    this.onEvent(this.kind, JSON.parse(fields.data));
  }
}

function setLive(on) {
  $("live").textContent = on ? "live" : "reconnecting";
  $("live").classList.toggle("on", on);
}

// --- the data -----------------------------------------------------------------------------------

function merge(kind, answer) {
  // an /api/prices answer into the points of its series
  const times = answer.timestamps.map((t) => Date.parse(t) / 1000);
  for (const { hub, prices } of answer.data) {
    const name = `${TYPES[kind].name} ${hub}`;
    const points = (dashboard.points[name] ||= new Map());
    times.forEach((t, i) => points.set(t, prices[i]));
  }
}

function range(view) {
  // the view's range as /api/prices bounds: its dates, or a preset's length ending at the newest interval
  if (view.range === "custom") {
    return { start_date: view.start, end_date: view.end };
  }
  const newest = Math.max(...kinds(view).map((k) => dashboard.newest[k] ?? -Infinity));
  const end = Number.isFinite(newest) ? newest : Math.floor(Date.now() / 1000);
  const start = end - PRESETS[view.range] + (view.res === "15min" ? 900 : HOUR);
  return { start_date: new Date(start * 1000).toISOString(), end_date: new Date(end * 1000).toISOString() };
}

function following(view) {
  // new intervals are appended when the view reaches the newest data: a preset, or dates up to its Central day
  if (view.range !== "custom") return true;
  const newest = kinds(view).map((k) => dashboard.newest[k]);
  return newest.every((t) => t !== undefined) && newest.some((t) => view.end >= centralDay.format(new Date(t * 1000)));
}

// --- drawing --------------------------------------------------------------------------------------

function seriesNames(view) {
  const names = [];
  for (const hub of view.hubs) for (const kind of kinds(view)) names.push(`${TYPES[kind].name} ${hub}`);
  return names;
}

function chartData(names) {
  const xs = new Set();
  for (const name of names) for (const t of dashboard.points[name]?.keys() ?? []) xs.add(t);
  const x = [...xs].sort((a, b) => a - b);
  return [x, ...names.map((name) => x.map((t) => dashboard.points[name]?.get(t) ?? null))];
}

function spreadData(view, x) {
  // DA minus RT of each hub; a 15-minute RT price is set against its hour's DA price
  return [x, ...view.hubs.map((hub) => {
    const da = dashboard.points[`DA ${hub}`];
    const rt = dashboard.points[`RT ${hub}`];
    return x.map((t) => {
      const a = da?.get(t - (t % HOUR));
      const b = rt?.get(t);
      return a == null || b == null ? null : a - b;
    });
  })];
}

const formatTime = (u, t) => (t == null ? "" : labelTime.format(new Date(t * 1000)));
const formatPrice = (u, v) => (v == null ? "-" : v.toFixed(2));

function options(series, height) {
  return {
    width: $("chart").clientWidth || 320,
    height,
    tzDate: (t) => uPlot.tzDate(new Date(t * 1000), TZ),
    cursor: { sync: { key: "ercot" } },
    scales: { x: { time: true } },
    axes: [{}, { size: 60 }],
    series: [{ value: formatTime }, ...series],
  };
}

function draw(view) {
  const names = seriesNames(view);
  const data = chartData(names);
  const series = names.map((name) => {
    const [kind, hub] = name.split(" ");
    return { label: name, stroke: COLORS[view.hubs.indexOf(hub) % COLORS.length], width: 1.5,
             dash: kind === "RT" ? [5, 3] : undefined, value: formatPrice };
  });
  dashboard.chart?.destroy();
  dashboard.chart = new uPlot(options(series, 320), data, $("chart"));
  dashboard.spread?.destroy();
  dashboard.spread = null;
  const both = view.type === "both";
  $("spread-title").hidden = !both;
  if (both) {
    const spread = view.hubs.map((hub, i) => ({ label: `DA-RT ${hub}`, stroke: COLORS[i % COLORS.length], width: 1.2, value: formatPrice }));
    dashboard.spread = new uPlot(options(spread, 180), spreadData(view, data[0]), $("spread"));
  }
}

function update(view) {
  // new points: the same charts, new data
  const data = chartData(seriesNames(view));
  dashboard.chart.setData(data);
  dashboard.spread?.setData(spreadData(view, data[0]));
}

async function drawTable(view, bounds) {
  const columns = [];
  const rows = new Map(); // "day hub" -> {column: mean}
  await Promise.all(kinds(view).flatMap((kind) => ["onpeak", "offpeak"].map(async (block) => {
    const column = `${TYPES[kind].name} ${block === "onpeak" ? "on-peak" : "off-peak"}`;
    columns.push(column);
    const answer = await api("/api/prices", { ...priceParams(kind, view), ...bounds, aggregate: "daily", block, tz: TZ });
    answer.timestamps.forEach((t, i) => {
      for (const { hub, prices } of answer.data) {
        const key = `${t.slice(0, 10)} ${hub}`;
        if (!rows.has(key)) rows.set(key, {});
        rows.get(key)[column] = prices[i];
      }
    });
  })));
  columns.sort();
  const table = $("peaks");
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const title of ["Day", "Settlement point", ...columns]) head.appendChild(document.createElement("th")).textContent = title;
  const body = table.createTBody();
  for (const key of [...rows.keys()].sort()) {
    const [day, hub] = key.split(" ");
    const row = body.insertRow();
    row.insertCell().textContent = day;
    row.insertCell().textContent = hub;
    for (const column of columns) row.insertCell().textContent = formatPrice(null, rows.get(key)[column]);
  }
}

// --- the page ---------------------------------------------------------------------------------------

let streams = [];
let loading = 0;

async function load() {
  const view = (dashboard.view = readView());
  writeView(view); // the defaults too: the address bar shares this view
  const ticket = ++loading;
  dashboard.loaded = false;
  dashboard.points = {};
  dashboard.newest = {};
  showView(view);
  for (const s of streams) s.stop();
  let first;
  const told = new Promise((resolve) => (first = resolve));
  const waiting = new Set(kinds(view));
  streams = kinds(view).map((kind) => new Follow(kind, priceParams(kind, view), (k, answer) => {
    dashboard.events += 1;
    const times = answer.timestamps;
    if (times.length) dashboard.newest[k] = Math.max(dashboard.newest[k] ?? -Infinity, Date.parse(times[times.length - 1]) / 1000);
    waiting.delete(k);
    if (!waiting.size) first();
    if (!following(view)) return;
    merge(k, answer);
    if (dashboard.loaded) {
      update(view);
      drawTable(view, range(view)).catch(fail); // the newest day's means change too
    }
  }));
  // the newest intervals set where "the last 24 h" ends: wait for them, a little
  await Promise.race([told, new Promise((resolve) => setTimeout(resolve, 3000))]);
  if (ticket !== loading) return;
  const bounds = range(view);
  try {
    const answers = await Promise.all(kinds(view).map((kind) => api("/api/prices", { ...priceParams(kind, view), ...bounds })));
    if (ticket !== loading) return;
    kinds(view).forEach((kind, i) => merge(kind, answers[i]));
    draw(view);
    dashboard.loaded = true;
    await drawTable(view, bounds);
    $("message").textContent = "";
  } catch (err) {
    fail(err);
  }
}

function fail(err) {
  if (err instanceof NeedsKey) return askForKey();
  dashboard.error = err.message;
  $("message").textContent = err.message;
}

function showView(view) {
  for (const option of $("hubs").options) option.selected = view.hubs.includes(option.value);
  $("type").value = view.type;
  $("res").value = view.res;
  $("start").value = view.start;
  $("end").value = view.end;
  for (const button of $("presets").querySelectorAll("button")) button.classList.toggle("on", button.dataset.range === view.range);
}

function changed(changes) {
  const view = { ...readView(), ...changes };
  if (view.range === "custom" && !(view.start && view.end)) return;
  writeView(view);
  load();
}

async function showHealth() {
  const health = await api("/api/health");
  $("synthetic").hidden = !health.data;
  $("synthetic").textContent = health.data || "";
  const problems = (health.problems || []).map((p) => p.details);
  if (health.status === "no_data") problems.unshift(health.details);
  $("health").hidden = !problems.length;
  $("health").textContent = problems.length ? `Service ${health.status}: ${problems.join("; ")}` : "";
}

async function start() {
  try {
    await showHealth();
    const hubs = await api("/api/available_hubs");
    $("hubs").replaceChildren(...hubs.map((hub) => new Option(hub, hub)));
    $("key-form").hidden = true;
    await load();
  } catch (err) {
    fail(err);
  }
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem(KEY_STORE, $("key").value.trim());
  $("key").value = "";
  start();
});
$("change-key").addEventListener("click", askForKey);
$("hubs").addEventListener("change", () => {
  const hubs = [...$("hubs").selectedOptions].map((o) => o.value);
  if (hubs.length) changed({ hubs });
});
$("type").addEventListener("change", () => changed({ type: $("type").value }));
$("res").addEventListener("change", () => changed({ res: $("res").value }));
for (const button of $("presets").querySelectorAll("button")) {
  button.addEventListener("click", () => changed({ range: button.dataset.range }));
}
for (const id of ["start", "end"]) {
  $(id).addEventListener("change", () => changed({ range: "custom", start: $("start").value, end: $("end").value }));
}
addEventListener("resize", () => {
  const width = $("chart").clientWidth;
  dashboard.chart?.setSize({ width, height: 320 });
  dashboard.spread?.setSize({ width, height: 180 });
});
start();
setInterval(() => showHealth().catch(() => {}), 60000);
