// The time-series chart with uPlot: events and unique users per bucket, the
// open current bucket dashed, the previous period as a faint line. In kiosk
// the ticks are large and there is no hover legend; on the desktop the
// legend shows the hovered bucket, or the latest one when nothing is hovered.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { full } from "./format";
import type { ChartData } from "./series";

export type { Point } from "./series";

export class Chart {
  private plot?: uPlot;
  private last = "";
  private data?: ChartData;

  constructor(
    private el: HTMLElement,
    private kiosk: () => boolean,
  ) {
    new ResizeObserver(() => this.resize()).observe(el);
  }

  private size() {
    const w = Math.max(200, this.el.clientWidth);
    if (this.kiosk()) return { width: w, height: Math.max(120, this.el.clientHeight) };
    return { width: Math.max(280, w), height: Math.max(180, Math.min(320, Math.round(w * 0.32))) };
  }

  private resize() {
    if (!this.plot) return;
    // The tick size follows the screen: rebuild the kiosk chart when it changes.
    if (this.kiosk() && this.plot.root.dataset.font !== String(this.tickPx())) {
      this.rebuild();
      return;
    }
    this.plot.setSize(this.size());
  }

  /** Kiosk ticks: readable across a room, with the page's root font size (which follows the screen). */
  private tickPx(): number {
    return Math.round(parseFloat(getComputedStyle(document.documentElement).fontSize) * 0.85);
  }

  /** Drops the chart (the mode changed): the next render builds it anew. */
  reset(): void {
    this.plot?.destroy();
    this.plot = undefined;
    this.last = "";
  }

  render(d: ChartData): void {
    const key = JSON.stringify(d);
    if (key === this.last && this.plot) return; // no flicker when nothing changed
    this.last = key;
    this.data = d;
    const aligned: uPlot.AlignedData = [d.xs, d.events, d.eventsOpen, d.users, d.usersOpen, d.previous];
    if (this.plot) {
      this.plot.setData(aligned);
      this.showLatest();
      return;
    }
    this.rebuild();
  }

  private rebuild(): void {
    const d = this.data;
    if (!d) return;
    this.plot?.destroy();
    const kiosk = this.kiosk();
    const css = getComputedStyle(document.body);
    const v = (name: string, dflt: string) => css.getPropertyValue(name).trim() || dflt;
    const fg = kiosk ? v("--fg", "#eee") : v("--muted", "#888");
    const grid = v("--grid", "#8883");
    const px = this.tickPx();
    const font = kiosk ? `${px}px system-ui, sans-serif` : undefined;
    const axis: uPlot.Axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, ...(font ? { font } : {}) };
    const events = v("--accent", "#3a7");
    const users = v("--accent2", "#57c");
    const value = (_u: uPlot, n: number | null) => (n == null ? "–" : full(n));
    this.plot = new uPlot(
      {
        ...this.size(),
        cursor: kiosk ? { show: false } : { drag: { x: false, y: false } },
        legend: { show: !kiosk, live: true },
        series: [
          {},
          { label: "Events", stroke: events, width: kiosk ? 3 : 2, fill: "rgba(60,170,120,.12)", value },
          { label: "Events so far", stroke: events, width: kiosk ? 3 : 2, dash: [6, 6], alpha: 0.7, value },
          { label: "Unique users", stroke: users, width: kiosk ? 3 : 2, value },
          { label: "Users so far", stroke: users, width: kiosk ? 3 : 2, dash: [6, 6], alpha: 0.7, value },
          { label: "Previous period", stroke: fg, width: kiosk ? 2 : 1.5, alpha: 0.35, value },
        ],
        axes: kiosk
          ? [
              { ...axis, size: Math.round(px * 2), gap: Math.round(px * 0.3), space: px * 5, values: (_u, ticks, _i, _space, incr) => ticks.map((t) => timeTick(t, incr)) },
              { ...axis, size: Math.round(px * 4.2), gap: Math.round(px * 0.3), values: (_u, ticks) => ticks.map((t) => compactTick(t)) },
            ]
          : [axis, { ...axis, size: 60 }],
        hooks: kiosk ? {} : { setCursor: [(u) => u.cursor.idx == null && this.showLatest(u)] },
      },
      [d.xs, d.events, d.eventsOpen, d.users, d.usersOpen, d.previous],
      this.el,
    );
    this.plot.root.dataset.font = String(px);
    this.showLatest();
  }

  /** With no bucket hovered, the legend shows the latest values, not dashes. */
  private showLatest(u = this.plot): void {
    if (!u || this.kiosk() || !this.data?.xs.length || u.cursor.idx != null) return;
    u.setLegend({ idx: this.data.xs.length - 1 }, false);
  }
}

const tickFmt = new Intl.NumberFormat("en-US", { notation: "compact", maximumSignificantDigits: 3 });
function compactTick(n: number): string {
  return tickFmt.format(n);
}

const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
const hourFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
/** Kiosk time ticks on one line: the day for day steps, the time of day otherwise. */
function timeTick(sec: number, incrSec: number): string {
  const d = new Date(sec * 1000);
  return incrSec >= 86400 ? dayFmt.format(d) : hourFmt.format(d);
}
