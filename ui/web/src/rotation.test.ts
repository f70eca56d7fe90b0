import { describe, expect, it } from "vitest";
import { DEFAULT_EVERY_MS, MIN_EVERY_MS, nextStep, parseEvery, parseRotation, stepAt } from "./rotation";

const rot = (q: string) => parseRotation(new URLSearchParams(q));

describe("rotation", () => {
  it("reads the interval", () => {
    expect(["20s", "1m", "1m30s", "2h", "45", " 10s "].map(parseEvery)).toEqual([20_000, 60_000, 90_000, 7_200_000, 45_000, 10_000]);
    expect(["", "soon", "-5s", "1.5m", "10ms"].map(parseEvery)).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it("cycles the ranges of ?rotate at ?every", () => {
    const r = rot("rotate=24h,7d,30d&every=20s")!;
    expect(r.steps).toEqual([{ preset: "24h" }, { preset: "7d" }, { preset: "30d" }].map((s) => ({ ...s, type: undefined })));
    expect(r.everyMs).toBe(20_000);
    expect([0, 1, 2].map((i) => nextStep(r, i))).toEqual([1, 2, 0]);
    expect([0, 19_999, 20_000, 59_999, 60_000].map((t) => stepAt(r, t))).toEqual([0, 0, 1, 2, 0]);
  });

  it("cycles event types with ?type, every range with every type", () => {
    expect(rot("type=signup,purchase")!.steps).toEqual([
      { preset: undefined, type: "signup" },
      { preset: undefined, type: "purchase" },
    ]);
    expect(rot("rotate=24h,7d&type=a&type=b")!.steps.map((s) => `${s.preset}/${s.type}`)).toEqual(["24h/a", "24h/b", "7d/a", "7d/b"]);
  });

  it("keeps the interval within 5 s and 1 h, 30 s by default", () => {
    expect(rot("rotate=24h,7d")!.everyMs).toBe(DEFAULT_EVERY_MS);
    expect(rot("rotate=24h,7d&every=1s")!.everyMs).toBe(MIN_EVERY_MS);
    expect(rot("rotate=24h,7d&every=9h")!.everyMs).toBe(3_600_000);
    expect(rot("rotate=24h,7d&every=nonsense")!.everyMs).toBe(DEFAULT_EVERY_MS);
  });

  it("is no rotation with fewer than two steps; drops unknown ranges, bad types and repeats", () => {
    expect(rot("")).toBeUndefined();
    expect(rot("rotate=24h")).toBeUndefined();
    expect(rot("rotate=24h,24h,2y")).toBeUndefined();
    expect(rot("type=click")).toBeUndefined();
    expect(rot("rotate=24h,2y,7d&type=Bad Type")!.steps.map((s) => s.preset)).toEqual(["24h", "7d"]);
  });
});
