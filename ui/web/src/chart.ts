// The time-series chart: events and unique users per bucket, with uPlot.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Point {
  t: string;
  events: number;
  uniqueUsers: number;
}

export class Chart {
  private plot?: uPlot;
  private last = "";

  constructor(private el: HTMLElement) {
    new ResizeObserver(() => this.resize()).observe(el);
  }

  private size() {
    return { width: Math.max(280, this.el.clientWidth), height: Math.max(180, Math.min(320, Math.round(this.el.clientWidth * 0.32))) };
  }

  private resize() {
    this.plot?.setSize(this.size());
  }

  render(points: Point[]) {
    const key = JSON.stringify(points);
    if (key === this.last) return; // no flicker when nothing changed
    this.last = key;
    const data: uPlot.AlignedData = [
      points.map((p) => Date.parse(p.t) / 1000),
      points.map((p) => p.events),
      points.map((p) => p.uniqueUsers),
    ];
    if (this.plot) {
      this.plot.setData(data);
      return;
    }
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--muted").trim() || "#888";
    const grid = css.getPropertyValue("--grid").trim() || "#8883";
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    this.plot = new uPlot(
      {
        ...this.size(),
        cursor: { drag: { x: false, y: false } },
        legend: { live: true },
        series: [
          {},
          { label: "Events", stroke: css.getPropertyValue("--accent").trim() || "#3a7", width: 2, fill: "rgba(60,170,120,.12)" },
          { label: "Unique users", stroke: css.getPropertyValue("--accent2").trim() || "#57c", width: 2 },
        ],
        axes: [axis, { ...axis, size: 60 }],
      },
      data,
      this.el,
    );
  }
}
