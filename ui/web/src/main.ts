import "./style.css";
import { Chart, type Point } from "./chart";
import { Feed, type Mode, type Snapshot } from "./feed";
import { ago, change, count, rate } from "./format";
import { PRESETS, minutes, parseState, previous, resolve, toSearch, type Resolved, type ViewState } from "./ranges";

const REFRESH_MS = 5000; // the server's default REFRESH_INTERVAL
const SLOW_REFRESH_MS = 15_000; // chart and previous period

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

let state: ViewState = parseState(new URLSearchParams(location.search));
let range: Resolved;
let feed: Feed | undefined;
let current: Snapshot | undefined;
let prev: Snapshot["data"] | undefined;
let updatedAt = 0;
let slowTimer: number | undefined;
const chart = new Chart($("#chart"));

function api(path: string, from: string, to: string, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams({ from, to, ...extra });
  if (state.type) q.set("event_type", state.type);
  if (state.token) q.set("access_token", state.token);
  return `${path}?${q}`;
}

function setState(next: ViewState, push = true) {
  state = next;
  if (push) history.pushState(null, "", location.pathname + toSearch(state));
  start();
}

function renderControls() {
  document.body.classList.toggle("kiosk", state.kiosk);
  document.documentElement.classList.toggle("kiosk", state.kiosk);
  const nav = $("#presets");
  nav.replaceChildren(
    ...PRESETS.map((p) => {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = p.label;
      b.setAttribute("aria-pressed", String(!state.from && (state.preset ?? "24h") === p.id));
      b.onclick = () => setState({ ...state, preset: p.id, from: undefined, to: undefined });
      return b;
    }),
  );
  const filter = $("#filter");
  filter.hidden = !state.type;
  $("#filter-type").textContent = state.type ?? "";
  $("#range-label").textContent = range.label + (state.type ? ` · ${state.type}` : "");
  const csv = $<HTMLAnchorElement>("#csv");
  csv.href = api("/api/v1/analytics/export.csv", range.from, range.to, { tz, bucket: bucketFor(range) });
  if (state.from && state.to) {
    $<HTMLInputElement>("#custom-from").value = toLocalInput(new Date(state.from));
    $<HTMLInputElement>("#custom-to").value = toLocalInput(new Date(state.to));
  }
}

/** Chart buckets: minutes up to 3 hours, hours up to 8 days, days beyond. */
function bucketFor(r: Resolved): string {
  const span = r.end.getTime() - r.start.getTime();
  return span <= 3 * 3600e3 ? "minute" : span <= 8 * 86400e3 ? "hour" : "day";
}

function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function setCard(id: string, value: string, cur: number, before: number | undefined) {
  const card = $(`#${id}`);
  card.querySelector(".value")!.textContent = value;
  const c = change(cur, before);
  const el = card.querySelector(".change")!;
  el.textContent = before === undefined ? "" : `${c.text} vs previous`;
  el.className = "change " + c.dir;
}

function render() {
  const main = $("#main");
  if (!current) return;
  const d = current.data;
  main.dataset.state = d.totalEvents === 0 ? "empty" : "ready";
  const types = Object.entries(d.eventsByType);
  setCard("card-total", count(d.totalEvents), d.totalEvents, prev?.totalEvents);
  setCard("card-users", count(d.uniqueUsers), d.uniqueUsers, prev?.uniqueUsers);
  const perMin = d.totalEvents / minutes(range);
  setCard("card-rate", rate(perMin), perMin, prev ? prev.totalEvents / minutes(range) : undefined);
  const top = types[0];
  const topPrev = top && prev ? prev.eventsByType[top[0]] ?? 0 : undefined;
  setCard("card-top", top ? top[0] : "–", top ? top[1] : 0, topPrev);
  $("#card-top .sub").textContent = top ? `${count(top[1])} events` : "";

  const body = $("#types");
  const max = types.length ? types[0][1] : 0;
  body.replaceChildren(
    ...types.map(([name, n]) => {
      const tr = document.createElement("tr");
      const share = d.totalEvents ? (n / d.totalEvents) * 100 : 0;
      const th = document.createElement("th");
      th.scope = "row";
      const b = document.createElement("button");
      b.type = "button";
      b.className = "drill";
      b.textContent = name;
      b.title = `Show only ${name}`;
      b.onclick = () => setState({ ...state, type: name });
      th.append(b);
      const tdN = document.createElement("td");
      tdN.className = "n";
      tdN.textContent = count(n);
      const tdS = document.createElement("td");
      tdS.innerHTML = `<div class="share"><div class="bar" style="width:${max ? (n / max) * 100 : 0}%"></div><span>${share.toFixed(1)}%</span></div>`;
      tr.append(th, tdN, tdS);
      return tr;
    }),
  );
  tick();
}

function tick() {
  $("#updated").textContent = updatedAt ? `updated ${ago(Date.now() - updatedAt)}` : "";
}

function setMode(m: Mode) {
  const badge = $("#badge");
  badge.textContent = m === "connecting" ? "connecting" : m;
  badge.dataset.mode = m;
}

async function refreshSlow() {
  clearTimeout(slowTimer);
  const r = range;
  try {
    const [series, before] = await Promise.all([
      fetch(api("/api/v1/analytics/timeseries", r.from, r.to, { tz, bucket: bucketFor(r) })).then((res) => (res.ok ? res.json() : Promise.reject(res.status))),
      fetch(api("/api/v1/analytics/summary", previous(r).from, previous(r).to)).then((res) => (res.ok ? res.json() : Promise.reject(res.status))),
    ]);
    if (r !== range) return;
    chart.render(series.data as Point[]);
    prev = before.data;
    render();
  } catch {
    /* the badge tells; the next round retries */
  }
  if (range.live) slowTimer = window.setTimeout(refreshSlow, SLOW_REFRESH_MS);
}

function start() {
  feed?.stop();
  range = resolve(state, new Date());
  current = undefined;
  prev = undefined;
  updatedAt = 0;
  $("#main").dataset.state = "loading";
  renderControls();
  const onSnapshot = (s: Snapshot) => {
    current = s;
    updatedAt = Date.now();
    $("#main").dataset.error = "";
    render();
  };
  feed = new Feed({
    streamURL: api("/api/v1/analytics/stream", range.from, range.to),
    summaryURL: api("/api/v1/analytics/summary", range.from, range.to),
    intervalMs: REFRESH_MS,
    probeEveryMs: 30_000,
    onSnapshot,
    onMode: (m) => {
      setMode(m);
      if (m === "offline") $("#main").dataset.error = current ? "" : "error";
    },
    onTouch: () => {
      updatedAt = Date.now();
      tick();
    },
  });
  feed.start();
  refreshSlow();
}

// Controls that do not depend on the range.
$("#clear-filter").onclick = () => setState({ ...state, type: undefined });
$<HTMLFormElement>("#custom").onsubmit = (e) => {
  e.preventDefault();
  const f = $<HTMLInputElement>("#custom-from").value;
  const t = $<HTMLInputElement>("#custom-to").value;
  if (!f || !t || new Date(f) > new Date(t)) {
    $("#custom-error").textContent = "Choose a start before the end.";
    return;
  }
  $("#custom-error").textContent = "";
  // The end minute is included whole.
  setState({ ...state, preset: undefined, from: new Date(f).toISOString(), to: new Date(new Date(t).getTime() + 59_999).toISOString() });
};
window.addEventListener("popstate", () => setState(parseState(new URLSearchParams(location.search)), false));
setInterval(tick, 1000);
start();
