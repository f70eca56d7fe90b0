import { describe, expect, it } from "vitest";
import { ago, change, clock, compact, count, full, rate } from "./format";

describe("format", () => {
  it("formats counts and rates", () => {
    expect(count(1234567)).toBe("1,234,567");
    expect(count(12_345_678)).toBe("12.3M");
    expect(rate(3.14159)).toBe("3.1");
    expect(rate(1234.5)).toBe("1,235");
  });

  it("gives every digit, or three significant ones", () => {
    expect(full(1234567)).toBe("1,234,567");
    expect(full(1234567.4)).toBe("1,234,567");
    expect([999, 1234, 45_678, 1_234_567, 12_345_678, 999_999_999, 1_234_567_890].map(compact)).toEqual(["999", "1.23K", "45.7K", "1.23M", "12.3M", "1B", "1.23B"]);
  });

  it("caps changes: new when the previous period is empty, > 999% beyond", () => {
    expect(change(1_000_000, 0)).toEqual({ text: "new", dir: "up" });
    expect(change(2_003_433, 100)).toEqual({ text: "▲ > 999%", dir: "up" });
    expect(change(1099, 100)).toEqual({ text: "▲ 999%", dir: "up" });
    expect(change(1100, 100)).toEqual({ text: "▲ > 999%", dir: "up" });
    expect(change(0, 100)).toEqual({ text: "▼ 100%", dir: "down" });
  });

  it("tells the time on the 24-hour clock", () => {
    expect(clock(new Date(2026, 0, 2, 14, 2, 31))).toBe("14:02:31");
    expect(clock(new Date(2026, 0, 2, 9, 5, 7))).toBe("09:05:07");
  });

  it("shows changes against the previous period", () => {
    expect(change(110, 100)).toEqual({ text: "▲ 10%", dir: "up" });
    expect(change(97, 100)).toEqual({ text: "▼ 3.0%", dir: "down" });
    expect(change(5, 0)).toEqual({ text: "new", dir: "up" });
    expect(change(0, 0)).toEqual({ text: "±0%", dir: "flat" });
    expect(change(1, undefined).dir).toBe("none");
  });

  it("says how long ago", () => {
    expect(ago(500)).toBe("just now");
    expect(ago(12_000)).toBe("12 s ago");
    expect(ago(5 * 60_000)).toBe("5 min ago");
  });
});
