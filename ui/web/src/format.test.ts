import { describe, expect, it } from "vitest";
import { ago, change, count, rate } from "./format";

describe("format", () => {
  it("formats counts and rates", () => {
    expect(count(1234567)).toBe("1,234,567");
    expect(count(12_345_678)).toBe("12.3M");
    expect(rate(3.14159)).toBe("3.1");
    expect(rate(1234.5)).toBe("1,235");
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
