import "./style.css";
import { Chart, type Point } from "./chart";
import { loadConfig, modeAfter, type ServerConfig } from "./config";
import { Feed, type Mode, type Snapshot } from "./feed";
import { ago, change, count, rate } from "./format";
import { DEFAULT_PRESET, PRESETS, minutes, parseState, previous, resolve, toSearch, type Preset, type Resolved, type ViewState } from "./ranges";

const SLOW_REFRESH_MS = 15_000; // chart and previous period
const PROBE_EVERY_MS = 30_000; // while polling, how often to try the stream again

const $ = <T extends HTMLElement>(sel: string) => document.querySelector(sel) as T;
const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

type Summary = Snapshot["data"];

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

function setBadge(m: Mode) {
  const badge = $("#badge");
  badge.textContent = m;
  badge.dataset.mode = m;
}

function setCard(id: string, value: string, cur: number, before: number | undefined) {
  const card = $(`#${id}`);
  card.querySelector(".value")!.textContent = value;
  const c = change(cur, before);
  const el = card.querySelector(".change")!;
  el.textContent = before === undefined ? "" : `${c.text} vs previous`;
  el.className = "change " + c.dir;
}

function renderCards(d: Summary, prev: Summary | undefined, range: Resolved) {
  setCard("card-total", count(d.totalEvents), d.totalEvents, prev?.totalEvents);
  setCard("card-users", count(d.uniqueUsers), d.uniqueUsers, prev?.uniqueUsers);
  const perMin = d.totalEvents / minutes(range);
  setCard("card-rate", rate(perMin), perMin, prev ? prev.totalEvents / minutes(range) : undefined);
  const top = Object.entries(d.eventsByType)[0];
  const topPrev = top && prev ? prev.eventsByType[top[0]] ?? 0 : undefined;
  setCard("card-top", top ? top[0] : "–", top ? top[1] : 0, topPrev);
  $("#card-top .sub").textContent = top ? `${count(top[1])} events` : "";
}

function typeRow(name: string, n: number, total: number, max: number, drill: (type: string) => void): HTMLTableRowElement {
  const tr = document.createElement("tr");
  const share = total ? (n / total) * 100 : 0;
  const th = document.createElement("th");
  th.scope = "row";
  const b = document.createElement("button");
  b.type = "button";
  b.className = "drill";
  b.textContent = name;
  b.title = `Show only ${name}`;
  b.onclick = () => drill(name);
  th.append(b);
  const tdN = document.createElement("td");
  tdN.className = "n";
  tdN.textContent = count(n);
  const tdS = document.createElement("td");
  tdS.innerHTML = `<div class="share"><div class="bar" style="width:${max ? (n / max) * 100 : 0}%"></div><span>${share.toFixed(1)}%</span></div>`;
  tr.append(th, tdN, tdS);
  return tr;
}

function renderTypes(d: Summary, drill: (type: string) => void) {
  const types = Object.entries(d.eventsByType);
  const max = types.length ? types[0][1] : 0;
  $("#types").replaceChildren(...types.map(([name, n]) => typeRow(name, n, d.totalEvents, max, drill)));
}

/**
 * The page: the view it shows (kept in the URL), the server's settings, and
 * the numbers on screen with the feed and timer that bring them.
 */
class Dashboard {
  private range: Resolved;
  private config?: ServerConfig;
  private feed?: Feed;
  private current?: Snapshot;
  private prev?: Summary;
  private updatedAt = 0;
  private slowTimer?: number;
  private readonly chart = new Chart($("#chart"));

  constructor(private view: ViewState) {
    this.range = resolve(view, new Date());
  }

  /** Wires the controls that do not depend on the range. */
  bind(): void {
    $("#clear-filter").onclick = () => this.show({ ...this.view, type: undefined });
    $<HTMLFormElement>("#custom").onsubmit = (e) => {
      e.preventDefault();
      this.applyCustomRange();
    };
    window.addEventListener("popstate", () => this.show(parseState(new URLSearchParams(location.search)), false));
    setInterval(() => this.tick(), 1000);
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
    this.feed?.stop();
    this.feed = undefined;
    this.range = resolve(this.view, new Date());
    this.current = undefined;
    this.prev = undefined;
    this.updatedAt = 0;
    $("#main").dataset.state = "loading";
    this.renderControls();
    if (!this.config) return;
    this.feed = this.openFeed(this.config);
    void this.refreshSlow();
  }

  private openFeed(config: ServerConfig): Feed {
    const { from, to } = this.range;
    const feed = new Feed({
      streamURL: rangeURL("/api/v1/analytics/stream", this.view, from, to),
      summaryURL: rangeURL("/api/v1/analytics/summary", this.view, from, to),
      intervalMs: config.refreshIntervalMs,
      probeEveryMs: PROBE_EVERY_MS,
      onSnapshot: (s) => this.onSnapshot(s),
      onMode: (m) => this.showMode(m),
      onTouch: () => {
        this.updatedAt = Date.now();
        this.tick();
      },
    });
    feed.start();
    return feed;
  }

  private onSnapshot(s: Snapshot): void {
    this.current = s;
    this.updatedAt = Date.now();
    $("#main").dataset.error = "";
    this.render();
  }

  private showMode(m: Mode): void {
    setBadge(m);
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
    document.body.classList.toggle("kiosk", view.kiosk);
    document.documentElement.classList.toggle("kiosk", view.kiosk);
    $("#presets").replaceChildren(...PRESETS.map((p) => this.presetButton(p)));
    $("#filter").hidden = !view.type;
    $("#filter-type").textContent = view.type ?? "";
    $("#range-label").textContent = range.label + (view.type ? ` · ${view.type}` : "");
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

  private tick(): void {
    $("#updated").textContent = this.updatedAt ? `updated ${ago(Date.now() - this.updatedAt)}` : "";
  }

  /** The chart and the previous period: they change slowly, so they are fetched, not streamed. */
  private async refreshSlow(): Promise<void> {
    clearTimeout(this.slowTimer);
    const r = this.range;
    const before = previous(r);
    try {
      // No bucket: the server's automatic choice applies.
      const [series, prev] = await Promise.all([
        getJSON(rangeURL("/api/v1/analytics/timeseries", this.view, r.from, r.to, { tz })),
        getJSON(rangeURL("/api/v1/analytics/summary", this.view, before.from, before.to)),
      ]);
      if (r !== this.range) return;
      this.chart.render(series.data as Point[]);
      this.prev = prev.data;
      this.render();
    } catch {
      /* the badge tells; the next round retries */
    }
    // A round that failed after the view changed must not start a second loop.
    if (r.live && r === this.range) this.slowTimer = window.setTimeout(() => this.refreshSlow(), SLOW_REFRESH_MS);
  }
}

const page = new Dashboard(parseState(new URLSearchParams(location.search)));
page.bind();
page.start();
void page.connect();
