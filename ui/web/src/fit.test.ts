import { describe, expect, it } from "vitest";
import { planFit, sizeFor } from "./fit";

// Widths per px of font size, as a bold tabular font measures them: about
// 0.58 em per digit, 0.3 per separator.
const digits = (s: string) => [...s].reduce((w, c) => w + (c === "," || c === "." ? 0.3 : 0.58), 0);
const cand = (...texts: string[]) => texts.map((text) => ({ text, em: digits(text) }));
const opts = { max: 200, min: 12, readable: 50, lineHeight: 1.12 };

describe("fitting a number into its box", () => {
  it("is bounded by the width, the height and the largest size wanted", () => {
    expect(sizeFor(5, 300, undefined, opts)).toBe(60); // width: 300 px / 5 em
    expect(sizeFor(1, 300, 112, opts)).toBeCloseTo(100, 0); // height: 112 px / 1.12 (floored to a quarter px)
    expect(sizeFor(0.5, 1000, undefined, opts)).toBe(200); // max
  });

  it("shows every digit when they fit at a readable size", () => {
    const p = planFit(cand("1,234,567", "1.23M"), 400, 300, opts);
    expect(p.index).toBe(0);
    expect(p.size * digits("1,234,567")).toBeLessThanOrEqual(400);
    expect(p.size).toBeGreaterThanOrEqual(opts.readable);
  });

  it("goes compact when every digit would be too small to read across the room", () => {
    const p = planFit(cand("1,234,567", "1.23M"), 200, 300, opts);
    expect(p.index).toBe(1);
    expect(p.size * digits("1.23M")).toBeLessThanOrEqual(200);
    expect(p.wrap).toBe(false);
  });

  it("takes whichever fits largest when none is readable, and wraps below the minimum rather than cutting", () => {
    const p = planFit(cand("1,234,567", "1.23M"), 50, 300, opts);
    expect(p.index).toBe(1);
    expect(p.size).toBeLessThan(opts.readable);
    const name = "subscription_renewal_confirmed"; // 30 characters, one text only
    const tiny = planFit([{ text: name, em: 16 }], 100, undefined, opts);
    expect(tiny).toEqual({ index: 0, size: opts.min, wrap: true });
  });

  it("never plans a size at which the text is wider than its box", () => {
    for (let w = 20; w < 2000; w += 37) {
      for (const h of [undefined, 40, 400]) {
        const cs = cand("9,999,999", "10M");
        const p = planFit(cs, w, h, opts);
        if (!p.wrap) expect(p.size * cs[p.index].em).toBeLessThanOrEqual(w + 1e-9);
        if (h !== undefined && !p.wrap) expect(p.size * opts.lineHeight).toBeLessThanOrEqual(h + 1e-9);
      }
    }
  });
});
