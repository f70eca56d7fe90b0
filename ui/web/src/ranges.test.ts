import { describe, expect, it } from "vitest";
import { minutes, parseState, previous, resolve, toSearch } from "./ranges";

const now = new Date(2024, 4, 15, 14, 30, 0); // local time

describe("ranges", () => {
  it("defaults to the last 24 hours, live", () => {
    const st = parseState(new URLSearchParams(""));
    expect(st).toEqual({ kiosk: false, preset: "24h" });
    const r = resolve(st, now);
    expect([r.from, r.to, r.live]).toEqual(["now-24h", "now", true]);
    expect(minutes(r)).toBe(1440);
  });

  it("keeps presets, filters and kiosk in the URL, round trip", () => {
    for (const q of ["?range=7d&type=click", "?kiosk=1&access_token=ak_x", "?from=2024-01-01T00%3A00%3A00.000Z&to=2024-01-31T23%3A59%3A59.999Z&kiosk=1", ""]) {
      expect(toSearch(parseState(new URLSearchParams(q)))).toBe(q);
    }
  });

  it("ignores a bad preset or an inverted custom range", () => {
    expect(parseState(new URLSearchParams("range=2y")).preset).toBe("24h");
    expect(parseState(new URLSearchParams("from=2024-02-01&to=2024-01-01")).from).toBeUndefined();
  });

  it("resolves today and yesterday on the local calendar", () => {
    const today = resolve({ preset: "today", kiosk: false }, now);
    expect(today.start).toEqual(new Date(2024, 4, 15));
    expect(today.to).toBe("now");
    const y = resolve({ preset: "yesterday", kiosk: false }, now);
    expect(y.start).toEqual(new Date(2024, 4, 14));
    expect(y.end).toEqual(new Date(new Date(2024, 4, 15).getTime() - 1));
    expect(y.live).toBe(false);
  });

  it("compares with the previous period of the same length", () => {
    const r = resolve({ preset: "1h", kiosk: false }, now);
    const p = previous(r);
    expect(new Date(p.to).getTime()).toBe(r.start.getTime() - 1);
    expect(new Date(p.to).getTime() - new Date(p.from).getTime()).toBe(3600e3);
  });
});
