// loyalty-pulse dashboard: polls the worker's JSON endpoints and renders tiles,
// charts (uPlot, vendored), alerts and pipeline health. No build step, no CDN.
/* global uPlot */

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const DAY_MS = 86_400_000;
const HISTORY_DAYS = 180; // days the charts show
const SPARK_DAYS = 90;
const COMPARE_DAYS = 30; // tiles: change versus this many days earlier
const SEGMENTS = [["member", "Members"], ["non_member", "Non-members"], ["control", "Control group"]];
const COLORS = { all: "#1f6feb", member: "#8250df", non_member: "#bf8700", control: "#6e7781" };

// --- formatting ------------------------------------------------------------

const nf = (options) => new Intl.NumberFormat(config.locale, options);
const FORMATS = {
  money: nf({ style: "currency", currency: config.currency }),
  count: nf({ maximumFractionDigits: 0 }),
  decimal: nf({ minimumFractionDigits: 2, maximumFractionDigits: 2 }),
  ratio: nf({ style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }),
  points: nf({ minimumFractionDigits: 1, maximumFractionDigits: 1, signDisplay: "exceptZero" }),
  change: nf({
    style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1, signDisplay: "exceptZero",
  }),
  one: nf({ maximumFractionDigits: 1 }),
};
const DATE = new Intl.DateTimeFormat(config.locale, { dateStyle: "medium", timeZone: "UTC" });
const DATETIME = new Intl.DateTimeFormat(config.locale, {
  dateStyle: "medium", timeStyle: "short", timeZone: "UTC",
});
const CLOCK = new Intl.DateTimeFormat(config.locale, { timeStyle: "medium" });

/** A number as the page shows it; null (a ratio without data) is an em dash. */
export function format(kind, value) {
  if (value === null || value === undefined) return "—";
  return FORMATS[kind].format(value);
}

const dayMs = (iso) => Date.parse(`${iso}T00:00:00Z`);
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const formatDay = (iso) => (iso ? DATE.format(dayMs(iso)) : "—");

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const units = [["d", 86400], ["h", 3600], ["min", 60]];
  for (const [unit, size] of units) {
    if (seconds >= size) return `${format("one", seconds / size)} ${unit}`;
  }
  return `${format("one", seconds)} s`;
}

function pick(doc, path) {
  let node = doc;
  for (const part of path.split(".")) {
    if (node === null || typeof node !== "object" || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

// --- what the tiles show ---------------------------------------------------

const NO_ACTIVE = "no customer bought anything in the window";
const TILES = [
  { key: "active_customers", label: "Active customers", kind: "count", field: "active_customers" },
  { key: "aov", label: "Average order value", kind: "money", field: "aov", why: "no orders" },
  { key: "purchase_frequency", label: "Purchase frequency", kind: "decimal",
    field: "purchase_frequency", why: NO_ACTIVE },
  { key: "repeat_purchase_rate", label: "Repeat purchase rate", kind: "ratio",
    field: "repeat_purchase_rate", why: NO_ACTIVE },
  { key: "redemption_rate", label: "Redemption rate", kind: "ratio", field: "redemption_rate",
    why: "no points were issued" },
  { key: "enrollment_rate", label: "Enrollment rate", kind: "ratio", field: "enrollment_rate",
    why: NO_ACTIVE },
  { key: "churn_rate", label: "Churn rate", kind: "ratio", path: "churn.churn_rate",
    scope: `churn period ${config.churn_period_days} d`,
    why: "no customer was active at the start of the churn period" },
  { key: "retention_rate", label: "Retention rate", kind: "ratio", path: "churn.retention_rate",
    scope: `churn period ${config.churn_period_days} d`,
    why: "no customer was active at the start of the churn period" },
  { key: "clv", label: "Customer lifetime value", kind: "money", path: "clv.value",
    scope: "365-day window", why: "no orders or no churn rate over 365 days" },
  { key: "roi", label: "Program ROI", kind: "ratio", path: "program.roi", scope: "365-day window",
    why: "no reward cost, or no members or comparison customers buying, over 365 days" },
];
const tilePath = (tile, win) => tile.path || `windows.${win}.${tile.field}`;

function nullReason(why) {
  return `No data in the window: ${why || "nothing to compute it from"}.`;
}

// --- state -----------------------------------------------------------------

const state = {
  win: config.windows[0],
  doc: null,
  alerts: null,
  pipeline: null,
  history: null, // {days, series} of the fields below
  baseline: null, // /kpis/churn-baseline
  historyKey: null,
  historyAt: 0,
  lastEvents: null, // [server_time_ms, events_total]
  eventsPerSecond: null,
  renders: 0,
};
const charts = {};

function historyFields(win) {
  const fields = TILES.map((t) => tilePath(t, win));
  for (const kpi of ["repeat_purchase_rate", "aov"]) {
    for (const [segment] of SEGMENTS) fields.push(`windows.${win}.segments.${segment}.${kpi}`);
  }
  return [...new Set(fields)];
}

// --- fetching --------------------------------------------------------------

async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store" });
  } catch (err) {
    throw new Error(`The worker is unreachable (${path}): ${err.message}`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const why = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new Error(`${path}: ${why}`);
  }
  return body;
}

async function loadHistory(doc, pipeline, errors) {
  const key = `${state.win}|${pipeline ? pipeline.final_day : doc.as_of}`;
  if (key === state.historyKey && Date.now() - state.historyAt < 60_000) return;
  const to = doc.as_of;
  const from = isoDay(dayMs(to) - (HISTORY_DAYS - 1) * DAY_MS);
  const fields = historyFields(state.win).join(",");
  try {
    const [history, baseline] = await Promise.all([
      getJson(`/kpis/history?from=${from}&to=${to}&fields=${encodeURIComponent(fields)}`),
      getJson(`/kpis/churn-baseline?from=${from}&to=${to}`),
    ]);
    Object.assign(state, { history, baseline, historyKey: key, historyAt: Date.now() });
  } catch (err) {
    errors.push(err.message);
  }
}

let current = null; // the refresh under way
let queued = null; // the one to run after it

/** Refresh everything; while one runs, the next call waits for it and runs once more. */
function refresh() {
  if (current) {
    if (!queued) queued = current.then(() => { queued = null; return refresh(); });
    return queued;
  }
  current = refreshNow().finally(() => { current = null; });
  return current;
}

async function refreshNow() {
  const errors = [];
  const soft = (promise) => promise.catch((err) => { errors.push(err.message); return null; });
  try {
    const [doc, alerts, pipeline] = await Promise.all([
      soft(getJson("/kpis")), soft(getJson("/alerts?limit=20")), soft(getJson("/pipeline")),
    ]);
    if (doc) state.doc = doc;
    if (alerts) state.alerts = alerts;
    if (pipeline) {
      trackRate(pipeline);
      state.pipeline = pipeline;
      if (pipeline.redis_error) errors.push(pipeline.redis_error);
    }
    if (state.doc) await loadHistory(state.doc, state.pipeline, errors);
    render();
    if (!errors.length) $("updated").textContent = CLOCK.format(new Date());
  } finally {
    showErrors(errors);
  }
}

function trackRate(pipeline) {
  const now = [pipeline.server_time_ms, pipeline.events_total];
  const last = state.lastEvents;
  if (last && now[0] > last[0] && now[1] >= last[1]) {
    state.eventsPerSecond = ((now[1] - last[1]) * 1000) / (now[0] - last[0]);
  }
  state.lastEvents = now;
}

function showErrors(errors) {
  const box = $("error");
  box.hidden = !errors.length;
  box.textContent = errors.length
    ? `Could not refresh: ${[...new Set(errors)].join(" · ")} — showing the last numbers received; retrying every ${config.refresh_seconds} s.`
    : "";
}

// --- rendering -------------------------------------------------------------

function render() {
  if (state.doc) {
    renderStatus(state.doc);
    renderTiles(state.doc);
    renderSegments(state.doc);
    renderChannels(state.doc);
    renderCharts();
  }
  if (state.alerts) renderAlerts(state.alerts);
  if (state.pipeline) renderPipeline(state.pipeline);
  state.renders += 1;
  document.body.dataset.renders = String(state.renders);
}

function renderStatus(doc) {
  const asOf = $("as-of");
  asOf.dateTime = doc.as_of;
  asOf.textContent = formatDay(doc.as_of);
  const badge = $("day-state");
  badge.className = `badge ${doc.final ? "final" : "open"}`;
  badge.textContent = doc.final ? "final" : "open day — may still change";
  badge.title = doc.final
    ? "This day is final: its numbers will not change."
    : "The watermark has not passed the end of this day plus the allowed lateness yet.";
  document.body.dataset.asOf = doc.as_of;
  document.body.dataset.final = String(doc.final);
  document.body.dataset.window = state.win;
  $("kpis-window").textContent = `${parseInt(state.win, 10)} days`;
}

function buildTiles() {
  const list = $("tiles");
  for (const tile of TILES) {
    const box = document.createElement("div");
    box.className = "tile";
    box.dataset.kpi = tile.key;
    box.dataset.kind = tile.kind;
    box.innerHTML = `<dt id="tile-${tile.key}">${tile.label}${
      tile.scope ? ` <span class="scope">(${tile.scope})</span>` : ""
    }</dt><dd class="value">…</dd><dd class="delta"></dd><dd class="trend"></dd>`;
    list.append(box);
  }
}

function seriesOf(path) {
  const h = state.history;
  return h && h.series && h.series[path] ? { days: h.days, values: h.series[path] } : null;
}

function renderTiles(doc) {
  for (const tile of TILES) {
    const box = document.querySelector(`.tile[data-kpi="${tile.key}"]`);
    const path = tilePath(tile, state.win);
    const value = pick(doc, path) ?? null;
    box.dataset.value = JSON.stringify(value);
    box.dataset.path = path;
    const cell = box.querySelector(".value");
    cell.textContent = format(tile.kind, value);
    cell.classList.toggle("null", value === null);
    if (value === null) {
      cell.title = nullReason(tile.why);
      cell.setAttribute("aria-label", `No value. ${nullReason(tile.why)}`);
    } else {
      cell.removeAttribute("title");
      cell.removeAttribute("aria-label");
    }
    const series = seriesOf(path);
    renderDelta(box.querySelector(".delta"), tile, value, series, doc.as_of);
    renderSpark(box.querySelector(".trend"), tile, series);
  }
}

function renderDelta(cell, tile, value, series, asOf) {
  const earlierDay = isoDay(dayMs(asOf) - COMPARE_DAYS * DAY_MS);
  const index = series ? series.days.indexOf(earlierDay) : -1;
  const earlier = index >= 0 ? series.values[index] : null;
  cell.className = "delta";
  cell.title = `Versus ${formatDay(earlierDay)}`;
  if (value === null || earlier === null || earlier === undefined
      || (tile.kind !== "ratio" && earlier === 0)) {
    cell.textContent = `— vs ${COMPARE_DAYS} d earlier`;
    cell.title = index < 0
      ? `No final day ${formatDay(earlierDay)} in the history yet`
      : `No value to compare on ${formatDay(earlierDay)}`;
    return;
  }
  // percentage points for rates, a relative change for the others; shown to 0.1
  const change = tile.kind === "ratio" ? (value - earlier) * 100 : (value - earlier) / Math.abs(earlier);
  const text = tile.kind === "ratio"
    ? `${FORMATS.points.format(change)} pp`
    : FORMATS.change.format(change);
  cell.textContent = `${text} vs ${COMPARE_DAYS} d earlier`;
  const shown = Math.round(Math.abs(change) * (tile.kind === "ratio" ? 10 : 1000));
  if (shown && change > 0) cell.classList.add("up");
  if (shown && change < 0) cell.classList.add("down");
}

function renderSpark(cell, tile, series) {
  const values = series ? series.values.slice(-SPARK_DAYS) : [];
  const known = values.filter((v) => v !== null && v !== undefined);
  if (known.length < 2) {
    cell.innerHTML = '<span class="summary">no trend yet</span>';
    return;
  }
  const min = Math.min(...known);
  const span = Math.max(...known) - min || 1;
  const step = 100 / (values.length - 1);
  const points = values
    .map((v, i) => (v === null || v === undefined ? null : `${(i * step).toFixed(2)},${(26 - ((v - min) / span) * 24).toFixed(2)}`))
    .filter(Boolean)
    .join(" ");
  const label = `${tile.label}, last ${values.length} final days: from ${format(tile.kind, known[0])} to ${format(tile.kind, known[known.length - 1])}`;
  cell.innerHTML = `<svg class="spark" viewBox="0 0 100 28" preserveAspectRatio="none" role="img" aria-label="${label}"><polyline vector-effect="non-scaling-stroke" points="${points}"/></svg>`;
}

function nullCell(kind, value, why) {
  const td = document.createElement("td");
  td.textContent = format(kind, value);
  td.dataset.value = JSON.stringify(value ?? null);
  if (value === null || value === undefined) {
    td.title = nullReason(why);
    td.className = "null-mark";
    td.setAttribute("aria-label", `No value. ${nullReason(why)}`);
  }
  return td;
}

function row(header, cells) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = header;
  tr.append(th, ...cells);
  return tr;
}

function renderSegments(doc) {
  const segments = doc.windows[state.win].segments;
  const rpc = (s) => (s.active_customers ? s.revenue / s.active_customers : null);
  const rows = [
    ["Active customers", "count", (s) => s.active_customers],
    ["Orders", "count", (s) => s.orders],
    ["Revenue", "money", (s) => s.revenue],
    ["Revenue per active customer", "money", rpc, NO_ACTIVE],
    ["Average order value", "money", (s) => s.aov, "no orders"],
    ["Purchase frequency", "decimal", (s) => s.purchase_frequency, NO_ACTIVE],
    ["Repeat purchase rate", "ratio", (s) => s.repeat_purchase_rate, NO_ACTIVE],
  ];
  const body = $("segments").tBodies[0];
  body.replaceChildren(...rows.map(([label, kind, get, why]) => row(
    label, SEGMENTS.map(([key]) => nullCell(kind, get(segments[key] || {}) ?? null, why)),
  )));
}

function renderChannels(doc) {
  const channels = Object.entries(doc.windows[state.win].channels);
  channels.sort((a, b) => b[1].revenue - a[1].revenue || a[0].localeCompare(b[0]));
  const total = channels.reduce((sum, [, c]) => sum + c.revenue, 0);
  const body = $("channels").tBodies[0];
  if (!channels.length) {
    body.innerHTML = '<tr><td colspan="5">No purchase in the window.</td></tr>';
    return;
  }
  body.replaceChildren(...channels.map(([name, c]) => {
    const share = total ? c.revenue / total : null;
    const shareCell = nullCell("ratio", share, "no revenue in the window");
    if (share !== null) {
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(share * 4).toFixed(2)}rem`;
      bar.setAttribute("aria-hidden", "true");
      shareCell.prepend(bar);
    }
    return row(name, [
      nullCell("count", c.orders), nullCell("money", c.revenue), shareCell,
      nullCell("money", c.aov, "no orders"),
    ]);
  }));
}

function renderAlerts(data) {
  const open = data.open;
  const line = $("open-alert");
  line.classList.toggle("firing", Boolean(open));
  line.dataset.open = open ? open.id : "";
  line.textContent = open
    ? `Open churn spike since ${formatDay(open.raised_day)}: churn rate ${format("ratio", open.churn_rate)} ≥ threshold ${format("ratio", open.threshold)} (baseline ${format("ratio", open.baseline)}), ${format("count", open.churned)} customers churned.`
    : "No open alert.";
  const body = $("alerts").tBodies[0];
  if (!data.alerts.length) {
    body.innerHTML = '<tr><td colspan="7">No alert so far.</td></tr>';
    return;
  }
  body.replaceChildren(...data.alerts.map((a) => {
    const tr = document.createElement("tr");
    Object.assign(tr.dataset, { alertId: a.id, status: a.status, day: a.day });
    const status = document.createElement("td");
    status.className = a.status;
    status.textContent = a.status === "raised" ? "raised" : "resolved";
    const cells = [
      formatDay(a.day), formatDay(a.raised_day), format("ratio", a.churn_rate),
      format("ratio", a.baseline), format("ratio", a.threshold), format("count", a.churned),
    ].map((text) => {
      const td = document.createElement("td");
      td.textContent = text;
      return td;
    });
    tr.append(status, ...cells);
    return tr;
  }));
}

function renderPipeline(p) {
  const lag = p.lag.partitions.length
    ? `${format("count", p.lag.total)} records (${p.lag.partitions.length} partitions)`
    : "—";
  const facts = [
    ["Watermark (event time, UTC)", p.watermark ? DATETIME.format(Date.parse(p.watermark)) : "—"],
    ["Watermark behind the clock", duration(p.watermark_delay_s)],
    ["Latest final day", formatDay(p.final_day)],
    ["Shown day", state.doc ? `${formatDay(state.doc.as_of)} (${state.doc.final ? "final" : "open"})` : "—"],
    ["Consumer lag", lag],
    ["Events per second", state.eventsPerSecond === null ? "measuring…" : format("one", state.eventsPerSecond)],
    ["Events read since start", format("count", p.events_total)],
    ["Rejected (owned partitions)", format("count", p.rejected_total)],
    ["Partitions / ready", `${p.partitions.length} / ${p.ready ? "yes" : "recovering"}`],
  ];
  $("pipeline").replaceChildren(...facts.map(([term, value]) => {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = value;
    div.append(dt, dd);
    return div;
  }));
  const reasons = Object.entries(p.rejected);
  const body = $("rejected").tBodies[0];
  if (!reasons.length) {
    body.innerHTML = '<tr><td colspan="2">None.</td></tr>';
    return;
  }
  body.replaceChildren(...reasons.map(([reason, n]) => row(reason, [nullCell("count", n)])));
}

// --- charts ----------------------------------------------------------------

function line(label, color, extra = {}) {
  return { label, stroke: color, width: 2, spanGaps: false, ...extra };
}

function markers(label, color) {
  return {
    label, stroke: color, fill: color, width: 0, paths: () => null,
    points: { show: true, size: 10, width: 2, stroke: color, fill: color },
  };
}

function chartData() {
  const h = state.history;
  const b = state.baseline;
  const w = state.win;
  const xs = (days) => days.map((d) => dayMs(d) / 1000);
  const out = {};
  if (b) {
    const raised = b.days.map(() => null);
    const resolved = b.days.map(() => null);
    for (const a of (state.alerts ? state.alerts.alerts : [])) {
      const i = b.days.indexOf(a.day);
      if (i >= 0) (a.status === "raised" ? raised : resolved)[i] = a.churn_rate;
    }
    out.churn = [xs(b.days), b.churn_rate, b.baseline, b.threshold, raised, resolved];
  }
  if (h) {
    const s = (path) => h.series[path] || h.days.map(() => null);
    const bySegment = (kpi) => SEGMENTS.map(([seg]) => s(`windows.${w}.segments.${seg}.${kpi}`));
    out.repeat = [xs(h.days), s(`windows.${w}.repeat_purchase_rate`), ...bySegment("repeat_purchase_rate")];
    out.redemption = [xs(h.days), s(`windows.${w}.redemption_rate`)];
    out.aov = [xs(h.days), s(`windows.${w}.aov`), ...bySegment("aov")];
  }
  return out;
}

const segmentLines = () => SEGMENTS.map(([key, label]) => line(label, COLORS[key], { width: 1.5 }));
const CHARTS = {
  churn: { kind: "ratio", series: () => [
    line("Churn rate", COLORS.all),
    line("Baseline", "#57606a", { dash: [6, 4], width: 1.5 }),
    line("Threshold", "#cf222e", { dash: [2, 3], width: 1 }),
    markers("Alert raised", "#cf222e"),
    markers("Alert resolved", "#1a7f37"),
  ] },
  repeat: { kind: "ratio", series: () => [line("All customers", COLORS.all), ...segmentLines()] },
  redemption: { kind: "ratio", series: () => [line("Redemption rate", COLORS.all)] },
  aov: { kind: "money", series: () => [line("All customers", COLORS.all), ...segmentLines()] },
};

function chartOptions(name, width) {
  const spec = CHARTS[name];
  return {
    width,
    height: 220,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: { x: { time: true } },
    series: [{ value: (u, ts) => (ts === null ? "—" : DATE.format(ts * 1000)) }, ...spec.series().map(
      (s) => ({ ...s, value: (u, v) => format(spec.kind, v) }),
    )],
    axes: [{}, { size: 64, values: (u, ticks) => ticks.map((v) => format(spec.kind, v)) }],
    legend: { live: true },
  };
}

function renderCharts() {
  if (typeof uPlot === "undefined") return;
  const data = chartData();
  for (const [name, rows] of Object.entries(data)) {
    const box = $(`chart-${name}`);
    const width = Math.max(200, box.clientWidth);
    if (!charts[name]) {
      charts[name] = new uPlot(chartOptions(name, width), rows, box);
    } else {
      charts[name].setData(rows);
    }
    summarize(name, rows);
  }
}

function summarize(name, rows) {
  const spec = CHARTS[name];
  const values = rows[1].filter((v) => v !== null && v !== undefined);
  const days = rows[0].length;
  let text = values.length
    ? `${days} final days; latest ${format(spec.kind, values[values.length - 1])}, range ${format(spec.kind, Math.min(...values))} to ${format(spec.kind, Math.max(...values))}.`
    : `${days} final days; no value yet.`;
  if (name === "churn") {
    const count = (i) => rows[i].filter((v) => v !== null).length;
    text += ` Alerts raised: ${count(4)}, resolved: ${count(5)}.`;
  }
  $(`chart-${name}-sum`).textContent = text;
}

function resizeCharts() {
  for (const [name, chart] of Object.entries(charts)) {
    const width = Math.max(200, $(`chart-${name}`).clientWidth);
    chart.setSize({ width, height: 220 });
  }
}

// --- start -----------------------------------------------------------------

function start() {
  const select = $("window");
  for (const w of config.windows) select.add(new Option(`${parseInt(w, 10)} days`, w));
  select.value = state.win;
  select.addEventListener("change", () => {
    state.win = select.value;
    state.historyKey = null;
    render();
    refresh();
  });
  buildTiles();
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(resizeCharts, 150);
  });
  const loop = async () => {
    try {
      await refresh();
    } catch (err) {
      console.error(err);
      showErrors([`the page failed to render: ${err.message}`]);
    }
    setTimeout(loop, config.refresh_seconds * 1000);
  };
  loop();
}

window.dashboard = { format, charts, state, refresh };
start();
