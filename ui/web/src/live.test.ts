import { describe, expect, it } from "vitest";
import { arrive, delayedSince, freshAt, parseRefused, parseSnapshot, parseStatus, WATCHDOG_INTERVALS, type Freshness } from "./live";

const I = 1000; // refresh interval
const body = (extra: Record<string, unknown> = {}) => JSON.stringify({ data: { totalEvents: 1234567, uniqueUsers: 5, eventsByType: { a: 1 } }, cached: true, period: { from: "x", to: "y" }, ...extra });
const snap = (extra: Record<string, unknown> = {}) => ({ kind: "snapshot" as const, snap: parseSnapshot(body(extra)) });

describe("the wire format", () => {
  it("reads summaries, fresh and stale", () => {
    const s = parseSnapshot(body());
    expect(s.data.totalEvents).toBe(1234567);
    expect(s.stale).toBe(false);
    const st = parseSnapshot(body({ stale: true, computedAt: "2026-01-02T14:02:31Z" }));
    expect(st.stale).toBe(true);
    expect(st.computedAt?.toISOString()).toBe("2026-01-02T14:02:31.000Z");
    expect(parseSnapshot(JSON.parse(body())).data.uniqueUsers).toBe(5);
  });

  it("refuses what is not a summary", () => {
    for (const b of ["null", "[]", "{}", '{"data":{"totalEvents":"1","uniqueUsers":1,"eventsByType":{}}}', "{"]) expect(() => parseSnapshot(b), b).toThrow();
  });

  it("reads status and refusals", () => {
    expect(parseStatus('{"state":"ok"}')).toEqual({ state: "ok" });
    const d = parseStatus('{"state":"delayed","since":"2026-01-02T14:02:31Z","computedAt":null,"reason":"database unavailable"}');
    expect(d).toMatchObject({ state: "delayed", reason: "database unavailable", computedAt: undefined });
    expect(d.state === "delayed" && d.since?.getTime()).toBe(Date.parse("2026-01-02T14:02:31Z"));
    expect(() => parseStatus('{"state":"maybe"}')).toThrow();
    expect(parseRefused('{"error":{"code":"unavailable","message":"too many live streams"}}')).toBe("too many live streams");
    expect(parseRefused("garbage")).toBe("refused");
  });
});

describe("freshness and the watchdog", () => {
  const t0 = 1_000_000;

  it("is fresh while something arrives every interval", () => {
    let f: Freshness = freshAt(t0);
    for (let t = t0; t < t0 + 10 * I; t += I) {
      f = arrive(f, snap(), t);
      expect(delayedSince(f, t + I - 1, I)).toBeUndefined();
    }
  });

  it("says delayed after two silent intervals, since the last fresh data, and clears with the next", () => {
    let f = arrive(freshAt(t0), snap(), t0);
    expect(delayedSince(f, t0 + WATCHDOG_INTERVALS * I, I)).toBeUndefined();
    expect(delayedSince(f, t0 + WATCHDOG_INTERVALS * I + 1, I)).toBe(t0);
    f = arrive(f, snap(), t0 + 5 * I);
    expect(delayedSince(f, t0 + 5 * I + 1, I)).toBeUndefined();
  });

  it("believes the server: a stale snapshot or a delayed status, at once, until fresh data or ok", () => {
    const computed = "2026-01-02T14:02:31Z";
    let f = arrive(freshAt(t0), snap(), t0);
    f = arrive(f, snap({ stale: true, computedAt: computed }), t0 + I);
    expect(delayedSince(f, t0 + I, I)).toBe(Date.parse(computed));
    f = arrive(f, snap({ stale: true, computedAt: computed }), t0 + 2 * I); // re-announced: the time stays
    expect(delayedSince(f, t0 + 2 * I, I)).toBe(Date.parse(computed));
    f = arrive(f, snap(), t0 + 3 * I);
    expect(delayedSince(f, t0 + 3 * I, I)).toBeUndefined();

    f = arrive(f, { kind: "status", status: parseStatus('{"state":"delayed","since":"2026-01-02T14:05:00Z","computedAt":null,"reason":"x"}') }, t0 + 4 * I);
    expect(delayedSince(f, t0 + 4 * I, I)).toBe(Date.parse("2026-01-02T14:05:00Z"));
    f = arrive(f, { kind: "status", status: { state: "ok" } }, t0 + 5 * I);
    expect(delayedSince(f, t0 + 5 * I, I)).toBeUndefined();
  });

  it("counts a poll's 304 as an arrival (the numbers were confirmed)", () => {
    let f = arrive(freshAt(t0), snap(), t0);
    f = arrive(f, { kind: "touch" }, t0 + 2 * I);
    expect(delayedSince(f, t0 + 3 * I, I)).toBeUndefined();
  });

  it("says delayed when nothing ever arrived", () => {
    expect(delayedSince(freshAt(t0), t0 + 3 * I, I)).toBe(t0);
  });
});
