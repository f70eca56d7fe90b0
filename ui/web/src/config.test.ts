import { describe, expect, it } from "vitest";
import { loadConfig, modeAfter, parseConfig, retryDelayMs } from "./config";

const served = { refreshIntervalMs: 5000, maxRangeMs: 34_560_000_000, maxPoints: 1440, autoBucket: { minuteUpToMs: 7_200_000, hourUpToMs: 345_600_000 } };

describe("server config", () => {
  it("takes the refresh interval from the server, whatever it is", () => {
    expect(parseConfig(served)).toEqual({ refreshIntervalMs: 5000 });
    expect(parseConfig({ ...served, refreshIntervalMs: 1000 })).toEqual({ refreshIntervalMs: 1000 });
    expect(parseConfig({ refreshIntervalMs: 250 })).toEqual({ refreshIntervalMs: 250 });
  });

  it("refuses a config without a usable refresh interval", () => {
    for (const body of [null, "5000", [], {}, { refreshIntervalMs: "5000" }, { refreshIntervalMs: 0 }, { refreshIntervalMs: -1 }, { refreshIntervalMs: Infinity }, { refreshIntervalMs: NaN }]) {
      expect(() => parseConfig(body), JSON.stringify(body)).toThrow(/refreshIntervalMs/);
    }
  });
});

describe("config retries", () => {
  it("waits 1 s, doubling, at most 30 s", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 100].map(retryDelayMs)).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("says connecting after one miss, offline after two", () => {
    expect([1, 2, 3].map(modeAfter)).toEqual(["connecting", "offline", "offline"]);
  });

  it("asks until the server answers with a usable config", async () => {
    const answers: (() => unknown)[] = [
      () => {
        throw new TypeError("Failed to fetch");
      },
      () => ({ refreshIntervalMs: "soon" }),
      () => served,
    ];
    const waits: number[] = [];
    const failures: number[] = [];
    const cfg = await loadConfig({
      get: async () => answers.shift()!(),
      sleep: async (ms) => void waits.push(ms),
      onFailure: (n) => failures.push(n),
    });
    expect(cfg).toEqual({ refreshIntervalMs: 5000 });
    expect(failures).toEqual([1, 2]);
    expect(waits).toEqual([1000, 2000]);
  });
});
