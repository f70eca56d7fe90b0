import "./style.css";
import { Chart } from "./chart";
import { loadConfig, modeAfter, type ServerConfig } from "./config";
import { Feed, type Mode } from "./feed";
import { fitText, type FitRequest } from "./fit";
import { ago, change, clock, compact, full, rate } from "./format";
import { arrive, delayedSince, freshAt, type Arrival, type Freshness, type Snapshot, type SummaryData } from "./live";
import { DEFAULT_PRESET, PRESETS, minutes, parseState, previous, resolve, toSearch, type Preset, type Resolved, type ViewState } from "./ranges";
import { nextStep, parseRotation, type Rotation } from "./rotation";
import { chartData, type Bucket, type Point } from "./series";

const SLOW_REFRESH_MS = 15_000; // chart and previous period
const PROBE_EVERY_MS = 30_000; // while polling, how often to try the stream again
const TICK_MS = 250; // clock, "updated … ago" and the watchdog
/** The live pulse: shared live ranges on the server, like any other. */
const PULSES = [
  { id: "card-minute", from: "now-1m", field: "totalEvents" },
  { id: "card-active", from: "now-5m", field: "uniqueUsers" },
] as const;

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

type Summary = SummaryData;

/** An API URL with the page's read key, for servers with READ_AUTH=required. */
function apiURL(path: string, params: Record<string, string>, token: string | undefined): string {
  const q = new URLSearchParams(params);
  if (token) q.set("access_token", token);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** An analytics URL for a range of the view, with its event type filter. */
function rangeURL(path: string, view: ViewState, from: string, to: string, extra: Record<string, string> = {}): string {
  return apiURL(path, { from, to, ...extra, ...(view.type ? { event_type: view.type } : {}) }, view.token);
}

async function getJSON(url: string) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return res.json();
}

function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function setText(el: Element, text: string) {
  if (el.textContent !== text) el.textContent = text;
}

// ---- fitting ---------------------------------------------------------------

/** What each fitted element shows; refitted when the screen changes size. */
const fitted = new Map<HTMLElement, (kiosk: boolean, max: number) => FitRequest>();

const screenMin = () => Math.min(window.innerWidth, window.innerHeight);

/** A headline number: every digit when they fit readably, 1.23M otherwise; the exact value for readers. */
function numberFit(label: string, n: number) {
  return (kiosk: boolean, max: number): FitRequest => ({
    texts: [full(n), compact(n)],
    title: `${label}: ${full(n)}`,
    // A short number (the pulse's 0) would fill its whole box: at most 16% of the screen, like its neighbours.
    max: kiosk ? Math.min(max, screenMin() * 0.16) : max,
    min: kiosk ? Math.max(12, screenMin() * 0.03) : 12,
    // Readable across a room: 6% of the screen's shorter side (the browser tests hold it).
    readable: kiosk ? screenMin() * 0.06 : max * 0.7,
    useHeight: kiosk,
  });
}

/**
 * A label or a name: shrunk to fit down to 70% of its size, then the next
 * shorter wording, and wrapped rather than cut when even that does not fit.
 */
function labelFit(...texts: string[]) {
  return (_kiosk: boolean, max: number): FitRequest => ({ texts, max, min: Math.max(9, max * 0.7), readable: max * 0.85, useHeight: false });
}

/**
 * An event type's name: on a wall screen shrunk further (a wrapped row
 * costs a row), elsewhere wrapped at its full size after an underscore.
 */
function nameFit(name: string) {
  return (kiosk: boolean, max: number): FitRequest => ({
    texts: [name],
    max,
    min: Math.max(9, max * (kiosk ? 0.6 : 0.8)),
    readable: max,
    useHeight: false,
    wrapAt: kiosk ? undefined : max,
  });
}

/** A word in a card's value box (the top type's name): shrunk to half its size, then wrapped after an underscore. */
function wordFit(text: string) {
  return (_kiosk: boolean, max: number): FitRequest => ({ texts: [text], max, min: Math.max(9, max * 0.5), readable: max * 0.85, useHeight: false });
}

/** The cards' labels, each with a shorter wording for narrow boxes. */
const LABELS: Record<string, [string, string]> = {
  "card-total": ["Total events", "Events"],
  "card-users": ["Unique users", "Users"],
  "card-minute": ["Events · last minute", "Last minute"],
  "card-active": ["Active users · 5 min", "Active · 5 min"],
  "card-rate": ["Avg events / min", "Avg / min"],
  "card-top": ["Top event type", "Top type"],
};

function fitLabels() {
  for (const [id, texts] of Object.entries(LABELS)) {
    const h2 = $(`#${id} h2`);
    if (!fitted.has(h2)) fit(h2, labelFit(...texts));
  }
}

/** What each element was last fitted to: a fit is redone only when its texts or its box changed. */
const lastFit = new WeakMap<HTMLElement, string>();

let refitPending = 0;
/** A fitted element whose box changes (the clock beside the title, a resized screen) is fitted again. */
const boxes = new ResizeObserver(() => {
  cancelAnimationFrame(refitPending);
  refitPending = requestAnimationFrame(refitAll);
});

function apply(el: HTMLElement, make: (kiosk: boolean, max: number) => FitRequest, kiosk: boolean) {
  const probe = make(kiosk, 0);
  const key = [probe.texts.join("\u0000"), el.clientWidth, probe.useHeight ? el.clientHeight : "", innerWidth, innerHeight, kiosk].join("|");
  if (lastFit.get(el) === key) return;
  el.style.fontSize = "";
  fitText(el, make(kiosk, parseFloat(getComputedStyle(el).fontSize)));
  lastFit.set(el, key);
}

function fit(el: HTMLElement, make: (kiosk: boolean, max: number) => FitRequest) {
  if (!fitted.has(el)) boxes.observe(el);
  fitted.set(el, make);
  apply(el, make, document.body.classList.contains("kiosk"));
}

function refitAll() {
  const kiosk = document.body.classList.contains("kiosk");
  for (const [el, make] of fitted) {
    if (!el.isConnected) {
      fitted.delete(el);
      boxes.unobserve(el);
    } else apply(el, make, kiosk);
  }
  fitRows(true);
}

/** In kiosk, as many event-type rows as fit the panel; the caption says how many are shown. */
let rowsKey = "";
function fitRows(force = false) {
  const rows = [...document.querySelectorAll<HTMLTableRowElement>("#types tr")];
  const panel = $(".types-panel");
  const key = [rows.length, rows[0]?.dataset.name, panel.clientWidth, panel.clientHeight, document.body.classList.contains("kiosk")].join("|");
  if (!force && key === rowsKey) return;
  rowsKey = key;
  for (const r of rows) r.hidden = false;
  let shown = rows.length;
  if (document.body.classList.contains("kiosk")) {
    const bottom = panel.getBoundingClientRect().bottom - parseFloat(getComputedStyle(panel).paddingBottom);
    const cut = rows.findIndex((r) => r.getBoundingClientRect().bottom > bottom + 0.5);
    if (cut >= 0) {
      shown = Math.max(0, cut);
      for (const r of rows.slice(shown)) r.hidden = true;
    }
  }
  setText($("#types-caption"), shown < rows.length ? `Events by type · top ${shown} of ${rows.length}` : "Events by type");
}

// ---- rendering -------------------------------------------------------------

function setCard(id: string, label: string, n: number | undefined, shown: string | undefined, cur: number, before: number | undefined) {
  const card = $(`#${id}`);
  const value = card.querySelector<HTMLElement>(".value")!;
  if (n !== undefined) fit(value, numberFit(label, n));
  else fit(value, wordFit(shown ?? "–"));
  const c = change(cur, before);
  const el = card.querySelector<HTMLElement>(".change")!;
  el.className = "change " + c.dir;
  fit(el, labelFit(before === undefined ? "" : `${c.text} vs previous`));
}

function renderCards(d: Summary, prev: Summary | undefined, range: Resolved) {
  fitLabels();
  setCard("card-total", "Total events", d.totalEvents, undefined, d.totalEvents, prev?.totalEvents);
  setCard("card-users", "Unique users", d.uniqueUsers, undefined, d.uniqueUsers, prev?.uniqueUsers);
  const perMin = d.totalEvents / minutes(range);
  setCard("card-rate", "Average events per minute", undefined, rate(perMin), perMin, prev ? prev.totalEvents / minutes(range) : undefined);
  const top = Object.entries(d.eventsByType)[0];
  const topPrev = top && prev ? prev.eventsByType[top[0]] ?? 0 : undefined;
  setCard("card-top", "Top event type", undefined, top ? top[0] : "–", top ? top[1] : 0, topPrev);
  fit($("#card-top .sub"), labelFit(top ? `${full(top[1])} events` : ""));
}

function typeRow(name: string, n: number, total: number, max: number, drill: (type: string) => void): HTMLTableRowElement {
  const tr = document.createElement("tr");
  const share = total ? (n / total) * 100 : 0;
  const th = document.createElement("th");
  th.scope = "row";
  const b = document.createElement("button");
  b.type = "button";
  b.className = "drill";
  b.title = `Show only ${name}`;
  b.onclick = () => drill(name);
  th.append(b);
  const tdN = document.createElement("td");
  tdN.className = "n";
  const tdS = document.createElement("td");
  tdS.className = "sharecell";
  const wrap = document.createElement("div");
  wrap.className = "share";
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.style.width = `${max ? (n / max) * 100 : 0}%`;
  const pct = document.createElement("span");
  pct.textContent = `${share.toFixed(1)}%`;
  wrap.append(bar, pct);
  tdS.append(wrap);
  tr.append(th, tdN, tdS);
  return tr;
}

function renderTypes(d: Summary, drill: (type: string) => void) {
  const types = Object.entries(d.eventsByType);
  const max = types.length ? types[0][1] : 0;
  const body = $("#types");
  const same = body.children.length === types.length && types.every(([name], i) => (body.children[i] as HTMLElement).dataset.name === name);
  // The same types in the same order (the usual refresh): numbers change in place, nothing is rebuilt.
  const rows = same ? ([...body.children] as HTMLTableRowElement[]) : types.map(([name, n]) => typeRow(name, n, d.totalEvents, max, drill));
  if (!same) {
    body.replaceChildren(...rows);
    rowsKey = "";
  }
  rows.forEach((tr, i) => {
    const [name, n] = types[i];
    tr.dataset.name = name;
    fit(tr.querySelector<HTMLElement>(".drill")!, nameFit(name));
    fit(tr.querySelector<HTMLElement>(".n")!, numberFit(name, n));
    tr.querySelector<HTMLElement>(".bar")!.style.width = `${max ? (n / max) * 100 : 0}%`;
    setText(tr.querySelector(".share span")!, `${(d.totalEvents ? (n / d.totalEvents) * 100 : 0).toFixed(1)}%`);
  });
  fitRows();
}

// ---- the page --------------------------------------------------------------

interface Live {
  feed: Feed;
  fresh: Freshness;
}

/**
 * The page: the view it shows (kept in the URL), the server's settings, and
 * the numbers on screen with the feeds and timers that bring them.
 */
class Dashboard {
  private range: Resolved;
  private config?: ServerConfig;
  private main?: Live;
  private pulses: Live[] = [];
  private pulseKey = "";
  private current?: Snapshot;
  private prev?: Summary;
  private updatedAt = 0;
  private slowTimer?: number;
  private rotateTimer?: number;
  private step = 0;
  private readonly chart = new Chart($("#chart"), () => this.view.kiosk);

  constructor(
    private view: ViewState,
    private readonly rotation: Rotation | undefined,
    private readonly title: string | undefined,
  ) {
    if (rotation) this.view = this.atStep(0);
    this.range = resolve(this.view, new Date());
  }

  /** Wires the controls that do not depend on the range. */
  bind(): void {
    $("#clear-filter").onclick = () => this.show({ ...this.view, type: undefined });
    $<HTMLFormElement>("#custom").onsubmit = (e) => {
      e.preventDefault();
      this.applyCustomRange();
    };
    window.addEventListener("popstate", () => this.show(parseState(new URLSearchParams(location.search)), false));
    setInterval(() => this.tick(), TICK_MS);
    let pending = 0;
    new ResizeObserver(() => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(refitAll);
    }).observe(document.body);
    void document.fonts?.ready.then(refitAll);
    fitLabels();
    if (this.title) {
      setText($("#title"), this.title);
      document.title = `${this.title} · analyticsd`;
    }
    if (this.rotation) {
      this.rotateTimer = window.setInterval(() => {
        this.step = nextStep(this.rotation!, this.step);
        this.show(this.atStep(this.step), false);
      }, this.rotation.everyMs);
    }
  }

  /** The view at a step of the rotation: its range and its event type. */
  private atStep(i: number): ViewState {
    const s = this.rotation!.steps[i];
    return { ...this.view, from: undefined, to: undefined, preset: s.preset ?? this.view.preset ?? DEFAULT_PRESET, type: s.type };
  }

  /** Asks the server for its settings (until it answers), then lets the data flow. */
  async connect(): Promise<void> {
    this.config = await loadConfig({
      get: () => getJSON(apiURL("/api/v1/config", {}, this.view.token)),
      sleep: (ms) => new Promise((done) => setTimeout(done, ms)),
      onFailure: (failures, err) => {
        this.showMode(modeAfter(failures));
        console.warn("analyticsd: no settings from the server yet:", err);
      },
    });
    this.start();
  }

  /** Shows another view; push adds it to the browser's history. */
  show(next: ViewState, push = true): void {
    this.view = next;
    if (push) history.pushState(null, "", location.pathname + toSearch(next));
    this.start();
  }

  /** (Re)starts the page for its view: the controls at once, the data once the settings are known. */
  start(): void {
    this.main?.feed.stop();
    this.main = undefined;
    this.range = resolve(this.view, new Date());
    this.current = undefined;
    this.prev = undefined;
    this.updatedAt = 0;
    $("#main").dataset.state = "loading";
    // No number of the previous view stays on screen under the new view's label.
    for (const el of document.querySelectorAll<HTMLElement>("#main .card:not(.pulse) .value")) fit(el, wordFit("–"));
    for (const el of document.querySelectorAll<HTMLElement>("#main .card:not(.pulse) .change, #card-top .sub")) setText(el, "");
    $("#types").replaceChildren();
    this.renderControls();
    if (!this.config) return;
    const { from, to } = this.range;
    this.main = this.openFeed(this.config, from, to, true, (s) => this.onSnapshot(s));
    this.startPulses(this.config);
    void this.refreshSlow();
  }

  /** The pulse follows the event type, not the range: a rotation of ranges keeps its streams. */
  private startPulses(config: ServerConfig): void {
    const key = `${this.view.type ?? ""}|${this.view.kiosk}`;
    if (this.pulses.length && key === this.pulseKey) return;
    for (const p of this.pulses) p.feed.stop();
    for (const p of PULSES) fit($(`#${p.id} .value`), wordFit("–"));
    this.pulseKey = key;
    // A wall screen streams its pulse; a desktop tab polls it, so that a few tabs stay within the
    // browser's six HTTP/1.1 connections per host (each stream holds one).
    const stream = this.view.kiosk;
    this.pulses = PULSES.map((p) =>
      this.openFeed(config, p.from, "now", stream, (s) => {
        const n = s.data[p.field];
        fit($(`#${p.id} .value`), numberFit(p.id === "card-minute" ? "Events in the last minute" : "Users active in the last 5 minutes", n));
      }),
    );
  }

  private openFeed(config: ServerConfig, from: string, to: string, stream: boolean, onSnapshot: (s: Snapshot) => void): Live {
    const live: Live = { fresh: freshAt(Date.now()), feed: undefined as unknown as Feed };
    const seen = (a: Arrival) => {
      live.fresh = arrive(live.fresh, a, Date.now());
      this.tick();
    };
    live.feed = new Feed({
      streamURL: rangeURL("/api/v1/analytics/stream", this.view, from, to),
      summaryURL: rangeURL("/api/v1/analytics/summary", this.view, from, to),
      intervalMs: config.refreshIntervalMs,
      probeEveryMs: PROBE_EVERY_MS,
      stream,
      onSnapshot: (s) => {
        seen({ kind: "snapshot", snap: s });
        onSnapshot(s);
      },
      onStatus: (status) => seen({ kind: "status", status }),
      onMode: (m) => {
        if (live === this.main || !this.main) this.showMode(m);
      },
      onTouch: () => {
        if (live === this.main) this.updatedAt = Date.now();
        seen({ kind: "touch" });
      },
    });
    live.feed.start();
    return live;
  }

  private onSnapshot(s: Snapshot): void {
    this.current = s;
    this.updatedAt = Date.now();
    $("#main").dataset.error = "";
    this.render();
  }

  private showMode(m: Mode): void {
    const badge = $("#badge");
    setText(badge, m);
    badge.dataset.mode = m;
    if (m === "offline") $("#main").dataset.error = this.current ? "" : "error";
  }

  private applyCustomRange(): void {
    const f = $<HTMLInputElement>("#custom-from").value;
    const t = $<HTMLInputElement>("#custom-to").value;
    if (!f || !t || new Date(f) > new Date(t)) {
      $("#custom-error").textContent = "Choose a start before the end.";
      return;
    }
    $("#custom-error").textContent = "";
    // The end minute is included whole.
    this.show({ ...this.view, preset: undefined, from: new Date(f).toISOString(), to: new Date(new Date(t).getTime() + 59_999).toISOString() });
  }

  private renderControls(): void {
    const { view, range } = this;
    if (document.body.classList.contains("kiosk") !== view.kiosk) this.chart.reset();
    document.body.classList.toggle("kiosk", view.kiosk);
    document.documentElement.classList.toggle("kiosk", view.kiosk);
    $("#presets").replaceChildren(...PRESETS.map((p) => this.presetButton(p)));
    $("#filter").hidden = !view.type;
    $("#filter-type").textContent = view.type ?? "";
    const rot = this.rotation ? ` · ${this.step + 1}/${this.rotation.steps.length}` : "";
    setText($("#range-label"), range.label + (view.type ? ` · ${view.type}` : "") + rot);
    // On a wall screen the title shares one line with the clock and the state: it fits beside them.
    const h1 = $("#title");
    if (view.kiosk) fit(h1, labelFit(h1.textContent ?? ""));
    else {
      fitted.delete(h1);
      h1.removeAttribute("style");
    }
    // No bucket: the server picks it, as for the chart.
    $<HTMLAnchorElement>("#csv").href = rangeURL("/api/v1/analytics/export.csv", view, range.from, range.to, { tz });
    if (view.from && view.to) {
      $<HTMLInputElement>("#custom-from").value = toLocalInput(new Date(view.from));
      $<HTMLInputElement>("#custom-to").value = toLocalInput(new Date(view.to));
    }
  }

  private presetButton(p: Preset): HTMLButtonElement {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = p.label;
    b.setAttribute("aria-pressed", String(!this.view.from && (this.view.preset ?? DEFAULT_PRESET) === p.id));
    b.onclick = () => this.show({ ...this.view, preset: p.id, from: undefined, to: undefined });
    return b;
  }

  private render(): void {
    if (!this.current) return;
    const d = this.current.data;
    $("#main").dataset.state = d.totalEvents === 0 ? "empty" : "ready";
    renderCards(d, this.prev, this.range);
    renderTypes(d, (type) => this.show({ ...this.view, type }));
    this.tick();
  }

  /** The clock, "updated … ago", and whether the numbers on screen may be old. */
  private tick(): void {
    const now = Date.now();
    setText($("#clock"), clock(new Date(now)));
    setText($("#updated"), this.updatedAt ? `updated ${ago(now - this.updatedAt)}` : "");
    let since: number | undefined;
    if (this.config) {
      // A range that has ended gets no more events: only the live ones are watched.
      for (const l of [this.range.live ? this.main : undefined, ...this.pulses]) {
        if (!l) continue;
        const s = delayedSince(l.fresh, now, this.config.refreshIntervalMs);
        if (s !== undefined && (since === undefined || s < since)) since = s;
      }
    }
    const banner = $("#delayed");
    if (since === undefined) {
      if (!banner.hidden) {
        banner.hidden = true;
        delete document.body.dataset.delayed;
        refitAll(); // the banner gave its height back to the panels
      }
      return;
    }
    setText(banner, `Data delayed since ${clock(new Date(since))}`);
    if (banner.hidden) {
      banner.hidden = false;
      document.body.dataset.delayed = "true";
      // The banner takes height from the panels at once: rows that no longer
      // fit are hidden now, not at the next resize the page happens to see.
      refitAll();
    }
  }

  /** The chart and the previous period: they change slowly, so they are fetched, not streamed. */
  private async refreshSlow(): Promise<void> {
    clearTimeout(this.slowTimer);
    const r = this.range;
    const before = previous(r);
    try {
      // No bucket: the server's automatic choice applies (the same for both periods: they are as long).
      const [series, prevSeries, prev] = await Promise.all([
        getJSON(rangeURL("/api/v1/analytics/timeseries", this.view, r.from, r.to, { tz })),
        getJSON(rangeURL("/api/v1/analytics/timeseries", this.view, before.from, before.to, { tz })).catch(() => undefined),
        getJSON(rangeURL("/api/v1/analytics/summary", this.view, before.from, before.to)),
      ]);
      if (r !== this.range) return;
      const span = r.end.getTime() - r.start.getTime();
      this.chart.render(chartData(series.data as Point[], series.bucket as Bucket, Date.now(), (prevSeries?.data ?? []) as Point[], span + 1));
      this.prev = prev.data;
      this.render();
    } catch {
      /* the badge tells; the next round retries */
    }
    // A round that failed after the view changed must not start a second loop.
    if (r.live && r === this.range) this.slowTimer = window.setTimeout(() => this.refreshSlow(), SLOW_REFRESH_MS);
  }
}

const q = new URLSearchParams(location.search);
const title = (q.get("title") ?? "").trim().slice(0, 80) || undefined;
const page = new Dashboard(parseState(q), parseRotation(q), title);
page.bind();
page.start();
void page.connect();
