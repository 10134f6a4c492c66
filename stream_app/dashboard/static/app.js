// loyalty-pulse dashboard: polls the worker's JSON endpoints and renders tiles, the
// program's economics, charts (uPlot, vendored), cohorts, alerts and pipeline health.
// No build step, no CDN. The KPIs are those of docs/kpis.md (spec version 2).
/* global uPlot */

const config = JSON.parse(document.getElementById("config").textContent);
const $ = (id) => document.getElementById(id);
const DAY_MS = 86_400_000;
const HISTORY_DAYS = 180; // days the charts show
const SPARK_DAYS = 90;
const COMPARE_DAYS = 30; // tiles: change versus this many days earlier
const TOP_STORES = 10; // stores listed by name; the rest are summed
const CHART_HEIGHT = 220;
const SEGMENTS = [["member", "Members"], ["non_member", "Non-members"], ["control", "Control group"]];
const COLORS = { all: "#1f6feb", member: "#8250df", non_member: "#bf8700", control: "#6e7781" };
const P = config.churn_period_days;
const T = config.inactivity_days ?? 90;
const CONFIDENCE = config.lift_confidence ?? 0.95;
const days = (w) => parseInt(w, 10);
/** The longest window (spec §3.4 W_max): program economics and the lift verdict. */
const LONGEST = config.windows.reduce((a, b) => (days(b) > days(a) ? b : a));

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
  // less common ones: signed differences, p-values, heatmap cells, chart axes
  signedMoney: nf({ style: "currency", currency: config.currency, signDisplay: "exceptZero" }),
  compactMoney: nf({
    style: "currency", currency: config.currency, notation: "compact", maximumFractionDigits: 1,
  }),
  pct: nf({ style: "percent", maximumFractionDigits: 0 }),
  pctAxis: nf({ style: "percent", maximumFractionDigits: 1 }),
  pvalue: nf({ minimumSignificantDigits: 2, maximumSignificantDigits: 2 }),
  pfloor: nf({ maximumFractionDigits: 3 }),
  confidence: nf({ style: "percent", maximumFractionDigits: 1 }),
};
const DATE = new Intl.DateTimeFormat(config.locale, { dateStyle: "medium", timeZone: "UTC" });
const DATETIME = new Intl.DateTimeFormat(config.locale, {
  dateStyle: "medium", timeStyle: "short", timeZone: "UTC",
});
const MONTH = new Intl.DateTimeFormat(config.locale, {
  month: "short", year: "numeric", timeZone: "UTC",
});
const CLOCK = new Intl.DateTimeFormat(config.locale, { timeStyle: "medium" });

/** A number as the page shows it; null (a ratio without data) is an em dash. */
export function format(kind, value) {
  if (value === null || value === undefined) return "—";
  return FORMATS[kind].format(value);
}

const known = (v) => v !== null && v !== undefined;
const dayMs = (iso) => Date.parse(`${iso}T00:00:00Z`);
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const formatDay = (iso) => (iso ? DATE.format(dayMs(iso)) : "—");
const formatMonth = (ym) => MONTH.format(Date.parse(`${ym}-01T00:00:00Z`));
const daysBetween = (a, b) => Math.round((dayMs(b) - dayMs(a)) / DAY_MS);
const confidenceText = () => FORMATS.confidence.format(CONFIDENCE);
const windowText = (w) => `last ${days(w)} days`;

function formatDays(value) {
  if (!known(value)) return "—";
  return `${format("one", value)} ${value === 1 ? "day" : "days"}`;
}

function formatP(p) {
  if (!known(p)) return "—";
  return p < 0.001 ? `< ${format("pfloor", 0.001)}` : format("pvalue", p);
}

/** "a to b" of an interval [low, high] (spec §3.4: each end may be null). */
function formatInterval(kind, pair) {
  const [low, high] = Array.isArray(pair) ? pair : [null, null];
  return `${format(kind, low)} to ${format(kind, high)}`;
}

function duration(seconds) {
  if (!known(seconds)) return "—";
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

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// --- what the tiles show ---------------------------------------------------

const NO_ACTIVE = "no customer bought anything in the window";
const NO_START = "no customer was active at the start of the churn period";
// better: +1 when a rise is good for the program, -1 when it is bad (churn), 0 neither.
const WINDOW_TILES = [
  { key: "revenue", label: "Revenue", kind: "money", field: "revenue", better: 1 },
  { key: "orders", label: "Orders", kind: "count", field: "orders", better: 1 },
  { key: "active_customers", label: "Active customers", kind: "count", field: "active_customers",
    better: 1 },
  { key: "aov", label: "Average order value", kind: "money", field: "aov", why: "no orders",
    better: 1 },
  { key: "purchase_frequency", label: "Purchase frequency", kind: "decimal",
    field: "purchase_frequency", why: NO_ACTIVE, better: 1 },
  { key: "repeat_purchase_rate", label: "Repeat purchase rate", kind: "ratio",
    field: "repeat_purchase_rate", why: NO_ACTIVE, better: 1 },
  { key: "redemption_rate", label: "Redemption rate", kind: "ratio", field: "redemption_rate",
    why: "no points were issued", better: 1 },
  { key: "enrollment_rate", label: "Enrollment rate", kind: "ratio", field: "enrollment_rate",
    why: NO_ACTIVE, better: 1 },
];
const FIXED_TILES = [
  { key: "churn_rate", label: "Churn rate", kind: "ratio", path: "churn.churn_rate",
    scope: () => `${P}-day churn period`, why: NO_START, better: -1,
    warmup: "churn.history_complete", reads: "low" },
  { key: "retention_rate", label: "Retention rate", kind: "ratio", path: "churn.retention_rate",
    scope: () => `${P}-day churn period`, why: NO_START, better: 1,
    warmup: "churn.history_complete", reads: "high" },
  { key: "clv", label: "Customer lifetime value", kind: "money", path: "clv.value",
    scope: (doc) => `${(doc && doc.clv && doc.clv.window_days) || 365} days`,
    why: "no orders or no churn rate over 365 days", better: 1,
    warmup: "clv.history_complete", reads: "high" },
  { key: "roi", label: "Program ROI", kind: "ratio", path: "program.roi",
    scope: () => `${days(LONGEST)} days`, better: 1, interval: "program.roi_ci",
    whyOf: (doc) => roiWhy(doc) },
];
const TILES = [...WINDOW_TILES, ...FIXED_TILES];
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
  cohortMode: "retention",
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

// --- warm-up (spec §3.2: history_complete = D − P − T + 1 ≥ F) -----------------

/**
 * The stream's first day F. /kpis does not carry it, but every day from F on becomes
 * final and is kept, so while the history is incomplete (F > D − P − T + 1) F is the
 * earliest final day of /kpis/history over [D − P − T, D] (the charts' history
 * reaches back that far). Without any final day yet, the shown day is the best guess
 * (then N is an upper bound).
 */
function firstDay(doc) {
  const h = state.history;
  if (h && h.days.length && h.from <= isoDay(dayMs(doc.as_of) - (P + T - 1) * DAY_MS)) {
    return { day: h.days[0], exact: true };
  }
  return { day: doc.as_of, exact: false };
}

/** null when the history is complete (or the engine does not say); else what is missing. */
function warmup(doc, flagPath = "churn.history_complete") {
  if (!doc || pick(doc, flagPath) !== false) return null;
  const first = firstDay(doc);
  const completeOn = isoDay(dayMs(first.day) + (P + T - 1) * DAY_MS);
  const more = Math.max(1, daysBetween(doc.as_of, completeOn));
  const need = `${first.exact ? "" : "up to "}${format("count", more)} more ${more === 1 ? "day" : "days"} of history`;
  return { more, completeOn, first: first.day, exact: first.exact, need, text: `needs ${need}` };
}

/** Whether final day ``day``'s churn history is complete (no spike verdict before):
 * /kpis/churn-baseline says so per day; else it follows from F. */
function dayComplete(day) {
  const b = state.baseline;
  const i = b && Array.isArray(b.history_complete) ? b.days.indexOf(day) : -1;
  const flag = i >= 0 ? b.history_complete[i] : undefined;
  if (flag === true || flag === false) return flag;
  const w = warmup(state.doc);
  return !w || day >= w.completeOn;
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
  // back far enough to see the stream's first day while the churn history warms up
  const from = isoDay(dayMs(to) - Math.max(HISTORY_DAYS - 1, P + T) * DAY_MS);
  const fields = historyFields(state.win).join(",");
  try {
    const [history, baseline] = await Promise.all([
      getJson(`/kpis/history?from=${from}&to=${to}&fields=${encodeURIComponent(fields)}`),
      getJson(`/kpis/churn-baseline?from=${from}&to=${to}`),
    ]);
    history.from = from;
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

/** Each part renders on its own: one that fails (an older document) spares the rest. */
function render() {
  const parts = [];
  if (state.doc) {
    parts.push(renderStatus, renderTiles, renderWarmup, renderProgram, renderCohorts,
      renderSegments, renderChannels, renderTiers, renderStores, renderSecond, renderCharts);
  }
  if (state.alerts) parts.push(() => renderAlerts(state.alerts));
  if (state.pipeline) parts.push(() => renderPipeline(state.pipeline));
  const failed = [];
  for (const part of parts) {
    try {
      part(state.doc);
    } catch (err) {
      console.error(err);
      failed.push(`${part.name || "a panel"}: ${err.message}`);
    }
  }
  state.renders += 1;
  document.body.dataset.renders = String(state.renders);
  if (failed.length) throw new Error(failed.join("; "));
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
  for (const label of document.querySelectorAll(".win-label")) {
    label.textContent = windowText(state.win);
  }
  const clvDays = (doc.clv && doc.clv.window_days) || 365;
  const spans = clvDays === days(LONGEST) ? `lifetime value and ROI the last ${clvDays} days`
    : `lifetime value the last ${clvDays} days and ROI the last ${days(LONGEST)} days`;
  $("fixed-hint").textContent = `Whatever the window selector says: churn and retention compare who was active ${P} days ago with today (active = a purchase in the last ${T} days); ${spans}.`;
  $("program-scope").textContent = `(last ${days(LONGEST)} days, not the window)`;
}

function buildTiles() {
  for (const [listId, tiles] of [["tiles", WINDOW_TILES], ["tiles-fixed", FIXED_TILES]]) {
    const list = $(listId);
    for (const tile of tiles) {
      const box = el("div", { className: "tile", dataset: { kpi: tile.key, kind: tile.kind } });
      box.innerHTML = `<dt id="tile-${tile.key}">${tile.label} <span class="scope"></span></dt><dd class="value">…</dd><dd class="note" hidden></dd><dd class="delta"></dd><dd class="trend"></dd>`;
      list.append(box);
    }
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
    box.querySelector(".scope").textContent = `(${tile.scope ? tile.scope(doc) : windowText(state.win)})`;
    const cell = box.querySelector(".value");
    cell.textContent = format(tile.kind, value);
    cell.style.setProperty("--chars", String(Math.max(6, cell.textContent.length)));
    cell.classList.toggle("null", value === null);
    const why = tile.whyOf ? tile.whyOf(doc) : nullReason(tile.why);
    if (value === null) {
      cell.title = why;
      cell.setAttribute("aria-label", `No value. ${why}`);
    } else {
      cell.removeAttribute("title");
      cell.removeAttribute("aria-label");
    }
    const note = box.querySelector(".note");
    const notes = [];
    const warm = tile.warmup ? warmup(doc, tile.warmup) : null;
    box.classList.toggle("provisional", Boolean(warm));
    box.dataset.warmup = warm ? String(warm.more) : "";
    if (warm) notes.push(`${cap(warm.text)}: reads ${tile.reads} until then.`);
    if (tile.interval) {
      const pair = pick(doc, tile.interval);
      if (pair !== undefined) {
        notes.push(value === null ? why : `${confidenceText()} interval: ${formatInterval(tile.kind, pair)}`);
      }
    } else if (value === null && tile.whyOf) {
      notes.push(why);
    }
    note.hidden = !notes.length;
    note.textContent = notes.join(" ");
    const series = seriesOf(path);
    renderDelta(box.querySelector(".delta"), tile, value, series, doc.as_of);
    renderSpark(box.querySelector(".trend"), tile, series);
  }
}

const cap = (text) => text.charAt(0).toUpperCase() + text.slice(1);

function renderDelta(cell, tile, value, series, asOf) {
  const earlierDay = isoDay(dayMs(asOf) - COMPARE_DAYS * DAY_MS);
  const index = series ? series.days.indexOf(earlierDay) : -1;
  const earlier = index >= 0 ? series.values[index] : null;
  cell.className = "delta";
  cell.dataset.verdict = "";
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
  const direction = shown ? Math.sign(change) : 0;
  if (direction > 0) cell.classList.add("up");
  if (direction < 0) cell.classList.add("down");
  const verdict = direction * (tile.better || 0);
  if (verdict) {
    const word = verdict > 0 ? "better" : "worse";
    cell.classList.add(verdict > 0 ? "good" : "bad");
    cell.dataset.verdict = verdict > 0 ? "good" : "bad";
    cell.append(el("span", { className: "sr-only", text: ` (${word})` }));
    cell.title = `Versus ${formatDay(earlierDay)}: ${word} for the program`;
  }
}

function renderSpark(cell, tile, series) {
  const values = series ? series.values.slice(-SPARK_DAYS) : [];
  const present = values.filter(known);
  if (present.length < 2) {
    cell.innerHTML = '<span class="summary">no trend yet</span>';
    return;
  }
  const min = Math.min(...present);
  const span = Math.max(...present) - min || 1;
  const step = 100 / (values.length - 1);
  const points = values
    .map((v, i) => (known(v) ? `${(i * step).toFixed(2)},${(26 - ((v - min) / span) * 24).toFixed(2)}` : null))
    .filter(Boolean)
    .join(" ");
  const label = `${tile.label}, last ${values.length} final days: from ${format(tile.kind, present[0])} to ${format(tile.kind, present[present.length - 1])}`;
  cell.innerHTML = `<svg class="spark" viewBox="0 0 100 28" preserveAspectRatio="none" role="img"><polyline vector-effect="non-scaling-stroke" points="${points}"/></svg>`;
  cell.firstChild.setAttribute("aria-label", label);
}

function renderWarmup(doc) {
  const warm = warmup(doc);
  for (const id of ["warmup", "chart-churn-warmup"]) {
    const box = $(id);
    box.hidden = !warm;
    box.dataset.more = warm ? String(warm.more) : "";
    if (!warm) continue;
    const since = `the stream's first day, ${formatDay(warm.first)}${warm.exact ? "" : " at the latest"}`;
    box.textContent = id === "warmup"
      ? `Warming up: churn, retention and lifetime value need ${warm.need} (complete on ${formatDay(warm.completeOn)}, ${P + T - 1} days after ${since}). Until then nobody can have been inactive for ${T} days, so churn reads low and retention and lifetime value read high.`
      : `Warm-up (dashed, shaded) until ${formatDay(warm.completeOn)}: churn ${warm.text} and reads low; no spike verdict before then.`;
  }
}

// --- program economics (spec §3.4 and §3.6) -------------------------------------

const GROUP = { control: "the control group", non_member: "non-members" };

function liftOf(doc, win = LONGEST) {
  return pick(doc, `windows.${win}.lift`) ?? null;
}

/** Why the lift's difference is null (spec §3.6: a group without customers). */
function differenceWhy(lift) {
  if (!lift) return "the worker's KPI engine does not compute the lift yet";
  if (!lift.members) return "no members yet";
  if (!lift.baseline_customers) {
    return lift.baseline === "control"
      ? "no control group yet"
      : "no control group yet, and no non-member has bought anything";
  }
  return "nothing to compare";
}

/** Why the interval and p-value are null: fewer than 2 customers in a group. */
function intervalWhy(lift) {
  if (!lift || !known(lift.difference)) return differenceWhy(lift);
  if (lift.members < 2 || lift.baseline_customers < 2) {
    return "needs at least 2 customers in each group";
  }
  return "no spread within the groups";
}

function roiWhy(doc) {
  const program = doc && doc.program;
  if (!program) return "no program figures";
  if (program.program_cost === 0) {
    return `program cost is 0: no reward redeemed and no fixed cost over the last ${days(LONGEST)} days`;
  }
  return differenceWhy(liftOf(doc));
}

/** significant | not-significant | none, and the sentence that says so. */
function verdictOf(lift) {
  if (!lift || !known(lift.difference)) {
    return { state: "none", text: `No verdict yet: ${differenceWhy(lift)}.` };
  }
  const d = lift.difference;
  const group = GROUP[lift.baseline] || lift.baseline;
  const amount = format("money", Math.abs(d));
  const spent = d === 0 ? `members spent as much per customer as ${group}`
    : `members spent ${amount} ${d > 0 ? "more" : "less"} per customer than ${group}`;
  const interval = `${confidenceText()} interval ${formatInterval("signedMoney", [lift.ci_low, lift.ci_high])}`;
  if (!known(lift.ci_low) || !known(lift.ci_high)) {
    return { state: "none", text: `No verdict yet: ${spent}, but the interval ${intervalWhy(lift)}.` };
  }
  const significant = known(lift.p_value)
    ? lift.p_value < 1 - CONFIDENCE
    : lift.ci_low > 0 || lift.ci_high < 0;
  const p = known(lift.p_value) ? `p = ${formatP(lift.p_value)}` : "no p-value: no spread within the groups";
  if (significant) {
    return { state: "significant", text: `Significant: ${spent} (${interval}, ${p}).` };
  }
  return {
    state: "not-significant",
    text: `Not yet significant: ${spent}, but the ${interval} includes 0 (${p}).`,
  };
}

function fact(key, label, kind, value, sub, why) {
  const isNull = !known(value);
  const box = el("div", { className: "fact", dataset: { key, value: JSON.stringify(value ?? null) } });
  const dd = el("dd", { className: `value${isNull ? " null" : ""}`, text: format(kind, value) });
  if (isNull) dd.setAttribute("aria-label", `No value: ${why}`);
  box.append(el("dt", { text: label }), dd);
  if (isNull) box.append(el("dd", { className: "why", text: why }));
  if (sub) box.append(sub);
  return box;
}

/** The interval under a figure; when an end is null, why (unless the figure says it already). */
function intervalLine(kind, pair, whyNull, whyFigure) {
  const ends = Array.isArray(pair) ? pair : [null, null];
  let text = `${confidenceText()} interval: `;
  if (!known(ends[0]) && !known(ends[1])) text += "—";
  else text += formatInterval(kind, ends);
  if ((!known(ends[0]) || !known(ends[1])) && whyNull !== whyFigure) text += ` (${whyNull})`;
  return el("dd", { className: "interval", dataset: { value: JSON.stringify(ends) }, text });
}

function renderProgram(doc) {
  const program = doc.program || {};
  const lift = liftOf(doc);
  const verdict = verdictOf(lift);
  const line = $("lift-verdict");
  line.dataset.state = verdict.state;
  line.textContent = verdict.text;
  const bias = $("lift-bias");
  const biased = lift && lift.baseline === "non_member";
  bias.hidden = !biased;
  if (biased) {
    bias.textContent = `Biased comparison: there is no control group (fewer than 2 customers held out of the program), so members are compared with non-members who bought. Members chose to join — they were keener customers to begin with — so the difference is inflated by self-selection and is not the program's effect. Hold out a control group to measure it.`;
  }
  const ciWhy = intervalWhy(lift);
  const costWhy = roiWhy(doc);
  const roiCiWhy = program.program_cost === 0 ? costWhy : ciWhy;
  const points = program.outstanding_points;
  $("program-facts").replaceChildren(
    fact("roi", "Return on investment", "ratio", program.roi,
      intervalLine("ratio", program.roi_ci, roiCiWhy, known(program.roi) ? null : costWhy), costWhy),
    fact("incremental_revenue", "Incremental revenue", "money", program.incremental_revenue,
      intervalLine("money", program.incremental_revenue_ci, ciWhy,
        known(program.incremental_revenue) ? null : differenceWhy(lift)), differenceWhy(lift)),
    fact("incremental_margin", "Incremental margin", "money", program.incremental_margin,
      el("dd", { className: "sub", text: "margin × incremental revenue" }), differenceWhy(lift)),
    fact("program_cost", "Program cost", "money", program.program_cost,
      el("dd", { className: "sub", text: "rewards redeemed + fixed running cost" }),
      "the KPI engine does not report it"),
    fact("outstanding_points_value", "Points liability", "money", program.outstanding_points_value,
      el("dd", {
        className: "sub",
        text: known(points) ? `${format("count", points)} points not yet redeemed` : "points not yet redeemed",
      }), "the KPI engine does not report it"),
    fact("members_total", "Members", "count", program.members_total,
      el("dd", {
        className: "sub",
        text: `control group: ${format("count", program.control_total)}`,
      }), "the KPI engine does not report it"),
  );
  renderLiftTable(doc);
}

/** Each body cell's column name (data-label): a phone shows the table one block per row. */
function labelCells(table) {
  const heads = [...table.tHead.rows[0].cells].map((th) => th.textContent.trim());
  for (const tr of table.tBodies[0].rows) {
    [...tr.cells].forEach((c, i) => {
      if (c.tagName === "TD" && c.colSpan === 1) c.dataset.label = heads[i];
      else if (c.colSpan > 1) c.classList.add("wide");
    });
  }
}

function cell(text, attrs = {}) {
  return el("td", { text, ...attrs });
}

function nullable(kind, value, why, formatter) {
  const td = cell(formatter ? formatter(value) : format(kind, value), {
    dataset: { value: JSON.stringify(value ?? null) },
  });
  if (!known(value)) {
    td.className = "null-mark";
    td.title = why;
    td.setAttribute("aria-label", `No value: ${why}`);
  }
  return td;
}

function renderLiftTable(doc) {
  $("lift-ci-h").textContent = `${confidenceText()} interval`;
  const notes = new Set();
  const rows = config.windows.map((win) => {
    const lift = liftOf(doc, win);
    const tr = el("tr", { dataset: { window: win } });
    tr.append(el("th", { scope: "row", text: `${days(win)} days` }));
    if (!lift) {
      tr.append(el("td", { colspan: "8", text: `— ${differenceWhy(lift)}` }));
      return tr;
    }
    const dWhy = differenceWhy(lift);
    const iWhy = intervalWhy(lift);
    if (!known(lift.difference)) notes.add(`— in the ${days(win)}-day row: ${dWhy}`);
    else if (!known(lift.ci_low)) notes.add(`— interval and p-value: ${iWhy}`);
    const difference = nullable("signedMoney", lift.difference, dWhy);
    difference.classList.add("wide");
    if (known(lift.relative_lift)) {
      difference.append(el("span", { className: "rel", text: ` (${format("change", lift.relative_lift)})` }));
    }
    const interval = nullable("signedMoney", known(lift.ci_low) && known(lift.ci_high) ? [lift.ci_low, lift.ci_high] : null, iWhy,
      (pair) => (pair ? formatInterval("signedMoney", pair) : "—"));
    interval.classList.add("wide");
    const verdict = verdictOf(lift);
    const verdictText = { significant: "significant", "not-significant": "not yet", none: "—" }[verdict.state];
    const baseline = `${lift.baseline === "control" ? "control" : "non-members"} (${format("count", lift.baseline_customers)})`;
    tr.append(
      cell(format("count", lift.members)),
      cell(baseline, { className: lift.baseline === "non_member" ? "biased" : null, title: lift.baseline === "non_member" ? "Biased by self-selection: members chose to join" : null }),
      nullable("money", lift.revenue_per_member, "no members yet"),
      nullable("money", lift.revenue_per_baseline, dWhy),
      difference,
      interval,
      nullable("pvalue", lift.p_value, iWhy, formatP),
      cell(verdictText, { className: `verdict-${verdict.state}`, title: verdict.text }),
    );
    return tr;
  });
  $("lift").tBodies[0].replaceChildren(...rows);
  labelCells($("lift"));
  $("lift-notes").textContent = [...notes].join(" · ");
}

// --- cohorts (spec §3.7) ---------------------------------------------------

function renderCohorts(doc) {
  const table = $("cohorts");
  const cohorts = doc.cohorts;
  const rows = cohorts && Array.isArray(cohorts.rows) ? cohorts.rows : [];
  const width = Math.max(1, ...rows.map((r) => r.active.length));
  const mode = state.cohortMode;
  const top = el("tr", {},
    el("th", { scope: "col", rowspan: "2", text: "Cohort", className: "fit" }),
    el("th", { scope: "col", rowspan: "2", text: "Customers", className: "fit" }),
    el("th", { scope: "colgroup", colspan: String(width), className: "span",
      text: "Months since first purchase" }));
  const ks = el("tr", {}, ...Array.from({ length: width }, (_, k) => el("th", { scope: "col", text: String(k) })));
  table.tHead.replaceChildren(top, ks);
  if (!rows.length) {
    table.tBodies[0].replaceChildren(el("tr", {}, el("td", {
      colspan: String(width + 2), text: "No cohorts yet: the KPI engine does not report them.",
    })));
    $("cohorts-sum").textContent = "";
    return;
  }
  const values = (r) => (mode === "revenue" ? r.revenue : r.retention);
  // colour relative to the brightest cell after month 0 (month 0 is 100 % by definition)
  const later = rows.flatMap((r) => values(r).slice(1)).filter(known);
  const scale = Math.max(...later, ...(later.length ? [] : rows.flatMap((r) => values(r)).filter(known)), 1e-9);
  table.tBodies[0].replaceChildren(...rows.map((r) => {
    const tr = el("tr", { dataset: { cohort: r.cohort, size: String(r.size) }, className: r.size ? null : "empty" });
    tr.append(el("th", { scope: "row", text: formatMonth(r.cohort), title: r.cohort }),
      cell(format("count", r.size)));
    if (!r.size) {
      tr.append(el("td", {
        colspan: String(width), className: "heat none",
        text: "— no first purchase this month",
      }));
      return tr;
    }
    for (let k = 0; k < width; k += 1) {
      if (k >= r.active.length) {
        tr.append(el("td", { className: "heat none" }));
        continue;
      }
      const value = values(r)[k];
      const month = isoDay(Date.UTC(Number(r.cohort.slice(0, 4)), Number(r.cohort.slice(5, 7)) - 1 + k, 1)).slice(0, 7);
      const partial = k === r.active.length - 1 && r.size > 0;
      const title = `Cohort ${formatMonth(r.cohort)}, month ${k} (${formatMonth(month)}${partial ? ", month to date" : ""}): ${format("count", r.active[k])} of ${format("count", r.size)} customers bought (${format("ratio", r.retention[k])}), revenue ${format("money", r.revenue[k])}`;
      const td = el("td", {
        className: `heat${partial ? " partial" : ""}`,
        title,
        dataset: { k: String(k), value: JSON.stringify(value ?? null) },
        text: known(value) ? (mode === "revenue" ? format("compactMoney", value) : format("pct", value)) : "—",
      });
      if (known(value)) {
        const t = Math.min(1, Math.max(0, value / scale));
        td.style.background = `rgba(31, 111, 235, ${(0.06 + 0.84 * t).toFixed(3)})`;
        if (t > 0.55) td.classList.add("dark");
      }
      tr.append(td);
    }
    return tr;
  }));
  const customers = rows.reduce((sum, r) => sum + r.size, 0);
  const m1 = rows.filter((r) => r.retention.length > 2 && known(r.retention[1]));
  const avg = m1.length ? m1.reduce((s, r) => s + r.retention[1], 0) / m1.length : null;
  $("cohorts-sum").textContent = `${format("count", rows.length)} monthly cohorts, ${format("count", customers)} customers. ${mode === "revenue" ? "Cells: the cohort's revenue in that month." : "Cells: the share of the cohort that bought in that month."} The last cell of each row (dashed) is the current month up to ${formatDay(doc.as_of)}.${avg === null ? "" : ` Month-1 retention averages ${format("ratio", avg)} over the ${format("count", m1.length)} cohorts with a complete month 1.`}`;
}

// --- tables per window ---------------------------------------------------------

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

function row(header, cells, attrs = {}) {
  const tr = el("tr", attrs);
  const th = document.createElement("th");
  th.scope = "row";
  th.textContent = header;
  tr.append(th, ...cells);
  return tr;
}

function shareCell(part, total) {
  const share = total ? part / total : null;
  const td = nullCell("ratio", share, "no revenue in the window");
  if (share !== null) {
    const bar = el("span", { className: "bar", "aria-hidden": "true" });
    bar.style.width = `${(Math.max(0, Math.min(1, share)) * 4).toFixed(2)}rem`;
    td.prepend(bar);
  }
  return td;
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
  labelCells($("segments"));
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
  body.replaceChildren(...channels.map(([name, c]) => row(name, [
    nullCell("count", c.orders), nullCell("money", c.revenue), shareCell(c.revenue, total),
    nullCell("money", c.aov, "no orders"),
  ])));
}

const sum = (items, get) => items.reduce((s, x) => s + (get(x) || 0), 0);
const aovOf = (revenue, orders) => (orders ? revenue / orders : null);

function renderTiers(doc) {
  const win = doc.windows[state.win];
  const tiers = win.tiers || {};
  const program = doc.program || {};
  const members = program.members_by_tier || {};
  const body = $("tiers").tBodies[0];
  const names = [...new Set([...Object.keys(tiers), ...Object.keys(members)])];
  if (!names.length) {
    body.replaceChildren(el("tr", {}, el("td", {
      colspan: "7",
      text: win.tiers ? "No member with a tier." : "No tiers: the KPI engine does not report them yet.",
    })));
    return;
  }
  const none = { orders: 0, revenue: 0, active_customers: 0, aov: null };
  names.sort((a, b) => ((tiers[b] || none).revenue - (tiers[a] || none).revenue)
    || ((members[b] || 0) - (members[a] || 0)) || a.localeCompare(b));
  const rows = names.map((name) => {
    const t = tiers[name] || none;
    return row(name, [
      nullCell("count", members[name] ?? 0), nullCell("count", t.active_customers),
      nullCell("count", t.orders), nullCell("money", t.revenue), shareCell(t.revenue, win.revenue),
      nullCell("money", t.aov, "no orders"),
    ], { dataset: { tier: name } });
  });
  // Everyone else: tiers are disjoint (one tier per customer as of D), so the rest adds up.
  const listed = Object.values(tiers);
  const rest = {
    members: known(program.members_total) ? program.members_total - sum(Object.values(members), (n) => n) : null,
    active: win.active_customers - sum(listed, (t) => t.active_customers),
    orders: win.orders - sum(listed, (t) => t.orders),
    revenue: win.revenue - sum(listed, (t) => t.revenue),
  };
  const other = row("no tier", [
    nullCell("count", rest.members, "no member count"), nullCell("count", rest.active),
    nullCell("count", rest.orders), nullCell("money", rest.revenue),
    shareCell(rest.revenue, win.revenue), nullCell("money", aovOf(rest.revenue, rest.orders), "no orders"),
  ], { className: "rest", dataset: { tier: "" }, title: "Non-members, the control group and members without a tier" });
  body.replaceChildren(...rows, other);
  labelCells($("tiers"));
}

function renderStores(doc) {
  const win = doc.windows[state.win];
  const body = $("stores").tBodies[0];
  if (!win.stores) {
    body.replaceChildren(el("tr", {}, el("td", {
      colspan: "5", text: "No stores: the KPI engine does not report them yet.",
    })));
    return;
  }
  const stores = Object.entries(win.stores);
  stores.sort((a, b) => b[1].revenue - a[1].revenue || a[0].localeCompare(b[0]));
  const top = stores.slice(0, TOP_STORES);
  const others = stores.slice(TOP_STORES).map(([, s]) => s);
  const rows = top.map(([name, s]) => row(name, [
    nullCell("count", s.orders), nullCell("money", s.revenue), shareCell(s.revenue, win.revenue),
    nullCell("money", s.aov, "no orders"),
  ], { dataset: { store: name } }));
  if (others.length) {
    const orders = sum(others, (s) => s.orders);
    const revenue = sum(others, (s) => s.revenue);
    rows.push(row(`other stores (${format("count", others.length)})`, [
      nullCell("count", orders), nullCell("money", revenue), shareCell(revenue, win.revenue),
      nullCell("money", aovOf(revenue, orders), "no orders"),
    ], { className: "rest", dataset: { store: "other" } }));
  }
  const all = stores.map(([, s]) => s);
  const orders = win.orders - sum(all, (s) => s.orders);
  const revenue = win.revenue - sum(all, (s) => s.revenue);
  if (orders > 0) {
    rows.push(row("no store (web, app…)", [
      nullCell("count", orders), nullCell("money", revenue), shareCell(revenue, win.revenue),
      nullCell("money", aovOf(revenue, orders), "no orders"),
    ], { className: "rest", dataset: { store: "" } }));
  }
  if (!rows.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: "5", text: "No purchase in the window." })));
    return;
  }
  body.replaceChildren(...rows);
}

function renderSecond(doc) {
  const win = doc.windows[state.win];
  const dist = win.days_to_second_purchase;
  const n = win.second_purchases;
  const why = known(n) ? "no customer made a second purchase in the window" : "the KPI engine does not report it yet";
  const box = (key, label, value, text) => {
    const div = el("div", { dataset: { key, value: JSON.stringify(value ?? null) } });
    const dd = el("dd", { text });
    if (!known(value)) dd.title = why;
    div.append(el("dt", { text: label }), dd);
    return div;
  };
  const d = dist || {};
  $("second").replaceChildren(
    box("median", "Median", d.median, formatDays(d.median)),
    box("p25_p75", "Middle half (p25–p75)", dist ? [d.p25, d.p75] : null,
      dist ? `${format("one", d.p25)}–${formatDays(d.p75)}` : "—"),
    box("mean", "Mean", d.mean, formatDays(d.mean)),
    box("second_purchases", "Customers", n, format("count", n)),
  );
  const bar = $("second-bar");
  if (!dist) {
    bar.replaceChildren();
    bar.hidden = true;
    $("second-sum").textContent = `— ${why}.`;
    return;
  }
  bar.hidden = false;
  const max = Math.max(d.p75 * 1.25, d.mean * 1.1, 1);
  const at = (v) => `${((v / max) * 100).toFixed(2)}%`;
  const span = el("span", { className: "box" });
  span.style.left = at(d.p25);
  span.style.width = `calc(${at(d.p75 - d.p25)} + 2px)`;
  const median = el("span", { className: "median" });
  median.style.left = at(d.median);
  const mean = el("span", { className: "mean" });
  mean.style.left = at(d.mean);
  bar.replaceChildren(span, median, mean, el("span", { className: "axis0", text: "0" }),
    el("span", { className: "axis1", text: formatDays(Math.round(max)) }));
  $("second-sum").textContent = `Days from the first to the second purchase of the ${format("count", n)} customers whose second purchase was in the ${windowText(state.win)}: median ${formatDays(d.median)} (the line), half of them between ${format("one", d.p25)} and ${formatDays(d.p75)} (the box), mean ${formatDays(d.mean)} (the dot).`;
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
    body.innerHTML = '<tr><td colspan="7" class="wide">No alert so far.</td></tr>';
    return;
  }
  body.replaceChildren(...data.alerts.map((a) => {
    const tr = el("tr", { dataset: { alertId: a.id, status: a.status, day: a.day } });
    const status = cell(a.status === "raised" ? "raised" : "resolved", { className: a.status });
    const cells = [
      formatDay(a.day), formatDay(a.raised_day), format("ratio", a.churn_rate),
      format("ratio", a.baseline), format("ratio", a.threshold), format("count", a.churned),
    ].map((text) => cell(text));
    tr.append(status, ...cells);
    return tr;
  }));
  labelCells($("alerts"));
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
  $("pipeline").replaceChildren(...facts.map(([term, value]) => el("div", {},
    el("dt", { text: term }), el("dd", { text: value }))));
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

const WARMUP_INK = "rgba(31, 111, 235, 0.5)"; // the churn line's blue, faded (and dashed)

/**
 * The churn chart's rows over the history's days: the churn rate split into the days
 * whose history is complete and the warm-up days before (dashed; they overlap on the
 * first complete day so the line joins), the detector's baseline and threshold by day
 * (the endpoint may leave warm-up days out), and the alert markers on complete days only.
 */
function churnRows(h, xs) {
  const rates = h.series["churn.churn_rate"] || h.days.map(() => null);
  const b = state.baseline || { days: [] };
  const at = new Map(b.days.map((d, i) => [d, i]));
  const fromBaseline = (key) => h.days.map((d) => (at.has(d) ? b[key][at.get(d)] : null));
  const complete = h.days.map(dayComplete);
  const firstComplete = complete.indexOf(true);
  const settled = rates.map((v, i) => (complete[i] ? v : null));
  const warm = rates.map((v, i) => (!complete[i] || (i === firstComplete && i > 0) ? v : null));
  const raised = h.days.map(() => null);
  const resolved = h.days.map(() => null);
  for (const a of (state.alerts ? state.alerts.alerts : [])) {
    const i = h.days.indexOf(a.day);
    if (i >= 0 && complete[i]) (a.status === "raised" ? raised : resolved)[i] = a.churn_rate;
  }
  const warmEnd = complete.every(Boolean) ? null
    : (firstComplete >= 0 ? xs[firstComplete] : xs[xs.length - 1] + DAY_MS / 1000);
  return {
    rows: [xs, settled, warm, fromBaseline("baseline"), fromBaseline("threshold"), raised, resolved],
    warmEnd,
  };
}

function chartData() {
  const h = state.history;
  const w = state.win;
  const out = {};
  if (!h) return out;
  const xs = h.days.map((d) => dayMs(d) / 1000);
  const s = (path) => h.series[path] || h.days.map(() => null);
  const bySegment = (kpi) => SEGMENTS.map(([seg]) => s(`windows.${w}.segments.${seg}.${kpi}`));
  out.churn = churnRows(h, xs);
  out.repeat = { rows: [xs, s(`windows.${w}.repeat_purchase_rate`), ...bySegment("repeat_purchase_rate")] };
  out.redemption = { rows: [xs, s(`windows.${w}.redemption_rate`)] };
  out.aov = { rows: [xs, s(`windows.${w}.aov`), ...bySegment("aov")] };
  return out;
}

const segmentLines = () => SEGMENTS.map(([key, label]) => line(label, COLORS[key], { width: 1.5 }));
const CHARTS = {
  churn: { kind: "ratio", axis: "pctAxis", series: () => [
    line("Churn rate", COLORS.all),
    line("Warm-up (reads low)", WARMUP_INK, { dash: [2, 3], width: 2 }),
    line("Baseline", "#57606a", { dash: [6, 4], width: 1.5 }),
    line("Threshold", "#cf222e", { dash: [2, 3], width: 1 }),
    markers("Alert raised", "#cf222e"),
    markers("Alert resolved", "#1a7f37"),
  ] },
  repeat: { kind: "ratio", axis: "pctAxis", series: () => [line("All customers", COLORS.all), ...segmentLines()] },
  redemption: { kind: "ratio", axis: "pctAxis", series: () => [line("Redemption rate", COLORS.all)] },
  aov: { kind: "money", axis: "compactMoney", series: () => [line("All customers", COLORS.all), ...segmentLines()] },
};

/** The y axis as wide as its longest label (a fixed width clips "$1,234" or wastes a phone's room). */
function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values || []).reduce((a, b) => (String(b).length > String(a).length ? b : a), "");
  u.ctx.font = axis.font[0];
  size += u.ctx.measureText(longest).width / devicePixelRatio;
  return Math.ceil(size) + 4;
}

/** Shades the warm-up days (before the churn history is complete) under the series. */
function shadeWarmup(u) {
  const end = u.warmEnd;
  if (!known(end) || !u.data[0].length) return;
  const { left, top, width, height } = u.bbox;
  const x1 = Math.min(left + width, Math.max(left, u.valToPos(end, "x", true)));
  if (x1 <= left) return;
  u.ctx.save();
  u.ctx.fillStyle = "rgba(140, 149, 159, 0.14)";
  u.ctx.fillRect(left, top, x1 - left, height);
  u.ctx.restore();
}

function chartOptions(name, width) {
  const spec = CHARTS[name];
  const axisFormat = FORMATS[spec.axis];
  return {
    width,
    height: CHART_HEIGHT,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: { x: { time: true } },
    series: [{ value: (u, ts) => (ts === null ? "—" : DATE.format(ts * 1000)) }, ...spec.series().map(
      (s) => ({ ...s, value: (u, v) => format(spec.kind, v) }),
    )],
    axes: [{ space: 60 }, { size: axisSize, values: (u, ticks) => ticks.map((v) => axisFormat.format(v)) }],
    legend: { live: true },
    hooks: name === "churn" ? { drawClear: [shadeWarmup] } : {},
  };
}

function chartWidth(name) {
  return Math.max(200, Math.floor($(`chart-${name}`).clientWidth));
}

function renderCharts() {
  if (typeof uPlot === "undefined") return;
  const data = chartData();
  for (const [name, { rows, warmEnd }] of Object.entries(data)) {
    const box = $(`chart-${name}`);
    if (!charts[name]) {
      charts[name] = new uPlot(chartOptions(name, chartWidth(name)), rows, box);
      observeSize(name);
    }
    charts[name].warmEnd = warmEnd ?? null;
    box.classList.toggle("no-warmup", name === "churn" && !known(warmEnd));
    charts[name].setData(rows);
    summarize(name, rows, warmEnd);
  }
}

function summarize(name, rows, warmEnd) {
  const spec = CHARTS[name];
  const values = rows[1].filter(known);
  const count = rows[0].length;
  let text = values.length
    ? `${count} final days; latest ${format(spec.kind, values[values.length - 1])}, range ${format(spec.kind, Math.min(...values))} to ${format(spec.kind, Math.max(...values))}.`
    : `${count} final days; no value${name === "churn" && count ? " with a complete history" : ""} yet.`;
  if (name === "churn") {
    const n = (i) => rows[i].filter(known).length;
    const warm = rows[2].filter(known).length;
    if (known(warmEnd) && warm) text += ` ${warm} warm-up days (shaded) without a verdict.`;
    text += ` Alerts raised: ${n(5)}, resolved: ${n(6)}.`;
  }
  $(`chart-${name}-sum`).textContent = text;
}

function fitChart(name) {
  const chart = charts[name];
  const width = chartWidth(name);
  if (chart && chart.width !== width) chart.setSize({ width, height: CHART_HEIGHT });
}

const observer = typeof ResizeObserver === "undefined" ? null
  : new ResizeObserver((entries) => {
    for (const entry of entries) fitChart(entry.target.id.replace("chart-", ""));
  });

function observeSize(name) {
  if (observer) observer.observe($(`chart-${name}`));
}

function resizeCharts() {
  for (const name of Object.keys(charts)) fitChart(name);
}

// --- start -----------------------------------------------------------------

function start() {
  const select = $("window");
  for (const w of config.windows) select.add(new Option(`${days(w)} days`, w));
  select.value = state.win;
  select.addEventListener("change", () => {
    state.win = select.value;
    state.historyKey = null;
    safeRender();
    refresh();
  });
  for (const radio of document.querySelectorAll('input[name="cohort-mode"]')) {
    radio.addEventListener("change", () => {
      state.cohortMode = radio.value;
      if (state.doc) renderCohorts(state.doc);
    });
  }
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

function safeRender() {
  try {
    render();
  } catch (err) {
    showErrors([`the page failed to render: ${err.message}`]);
  }
}

window.dashboard = { format, charts, state, refresh, warmup: () => warmup(state.doc) };
start();
