import { describe, expect, it } from "vitest";
import { alignPrevious, chartData, type Point } from "./series";

const pt = (iso: string, events: number): Point => ({ t: iso, events, uniqueUsers: Math.ceil(events / 2) });
const H = 3600e3;

describe("chart data", () => {
  const points = [pt("2026-01-01T10:00:00Z", 100), pt("2026-01-01T11:00:00Z", 120), pt("2026-01-01T12:00:00Z", 7)];

  it("splits the open current bucket from the complete ones", () => {
    const d = chartData(points, "hour", Date.parse("2026-01-01T12:10:00Z"));
    expect(d.open).toBe(true);
    expect(d.events).toEqual([100, 120, null]);
    expect(d.eventsOpen).toEqual([null, 120, 7]); // joined to the last complete bucket
    expect(d.users).toEqual([50, 60, null]);
    expect(d.usersOpen).toEqual([null, 60, 4]);
  });

  it("draws every bucket as complete once the last one has ended", () => {
    const d = chartData(points, "hour", Date.parse("2026-01-01T13:00:00Z"));
    expect(d.open).toBe(false);
    expect(d.events).toEqual([100, 120, 7]);
    expect(d.eventsOpen).toEqual([null, null, null]);
  });

  it("lays the previous period over this one, an empty one as no line", () => {
    const xs = points.map((p) => Date.parse(p.t) / 1000);
    const prev = [pt("2026-01-01T07:00:00Z", 90), pt("2026-01-01T08:00:00Z", 80), pt("2026-01-01T09:00:00Z", 70)];
    expect(alignPrevious(xs, prev, 3 * H, H)).toEqual([90, 80, 70]);
    // a period one millisecond longer (inclusive end) and a DST hour still match
    expect(alignPrevious(xs, [pt("2026-01-01T07:00:00Z", 5)], 3 * H + 1, H)).toEqual([5, null, null]);
    expect(alignPrevious(xs, [pt("2026-01-01T06:00:00Z", 5)], 3 * H, H)).toEqual([null, null, null]); // off the chart
    expect(alignPrevious(xs, [], 3 * H, H)).toEqual([null, null, null]);
  });
});
