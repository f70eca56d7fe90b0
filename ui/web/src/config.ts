// The server's settings that the dashboard follows, from GET /api/v1/config,
// so that the page keeps no copy of them. Pure but for the I/O that
// loadConfig is given: tested with Vitest.
import type { Mode } from "./feed";

/** The part of GET /api/v1/config that the dashboard uses. */
export interface ServerConfig {
  /** The server's REFRESH_INTERVAL: how often the live numbers move. */
  refreshIntervalMs: number;
}

/** Reads the config endpoint's JSON; throws when what the page needs is missing or wrong. */
export function parseConfig(body: unknown): ServerConfig {
  const ms = body !== null && typeof body === "object" ? (body as Record<string, unknown>).refreshIntervalMs : undefined;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) {
    throw new Error(`config: refreshIntervalMs is ${JSON.stringify(ms)}, not a positive number of milliseconds`);
  }
  return { refreshIntervalMs: ms };
}

export const RETRY_FIRST_MS = 1000;
export const RETRY_MAX_MS = 30_000;
/** After this many failed attempts in a row, say offline (and keep trying). */
export const FAILURES_BEFORE_OFFLINE = 2;

/** The wait after the n-th failure in a row (n ≥ 1): 1 s, doubling, at most 30 s. */
export function retryDelayMs(failures: number): number {
  return Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.max(0, failures - 1));
}

/** The badge while the config cannot be had: one miss may be a blip. */
export function modeAfter(failures: number): Mode {
  return failures >= FAILURES_BEFORE_OFFLINE ? "offline" : "connecting";
}

export interface ConfigSource {
  /** The endpoint's JSON; rejects on a network error or a non-2xx answer. */
  get: () => Promise<unknown>;
  sleep: (ms: number) => Promise<void>;
  onFailure: (failures: number, err: unknown) => void;
}

/** Asks until the server answers with a usable config. There is no fallback: a guess would be a copy. */
export async function loadConfig(src: ConfigSource): Promise<ServerConfig> {
  for (let failures = 1; ; failures++) {
    try {
      return parseConfig(await src.get());
    } catch (err) {
      src.onFailure(failures, err);
      await src.sleep(retryDelayMs(failures));
    }
  }
}
