// What the server says about freshness, and what the page makes of it.
// Parsing of the stream's events (summary, status, refused) and of the
// summary endpoint lives here only, so that the wire format is read in one
// place; the Freshness state machine decides when the page says "data
// delayed". Pure: tested with Vitest.

export interface SummaryData {
  totalEvents: number;
  uniqueUsers: number;
  eventsByType: Record<string, number>;
}

/** A summary: a stream's `summary` event or the summary endpoint's body. */
export interface Snapshot {
  data: SummaryData;
  period: { from: string; to: string };
  /** A re-announced last good snapshot while the database fails. */
  stale: boolean;
  /** When the server computed it (absent from older servers). */
  computedAt?: Date;
}

/** A stream's `status` event: the range cannot be refreshed (delayed) or can again (ok). */
export type Status = { state: "ok" } | { state: "delayed"; since?: Date; computedAt?: Date; reason: string };

const obj = (v: unknown): Record<string, unknown> | undefined => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : NaN);

function date(v: unknown): Date | undefined {
  if (typeof v !== "string") return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : new Date(t);
}

function parseJSON(text: string | unknown): unknown {
  return typeof text === "string" ? JSON.parse(text) : text;
}

/** Reads a summary (text or parsed JSON); throws when it is not one. */
export function parseSnapshot(body: string | unknown): Snapshot {
  const o = obj(parseJSON(body));
  const d = obj(o?.data);
  const p = obj(o?.period);
  const byType = obj(d?.eventsByType);
  const totalEvents = num(d?.totalEvents);
  const uniqueUsers = num(d?.uniqueUsers);
  if (!o || !d || !byType || Number.isNaN(totalEvents) || Number.isNaN(uniqueUsers)) throw new Error("live: not a summary");
  const types: Record<string, number> = {};
  for (const [k, v] of Object.entries(byType)) if (!Number.isNaN(num(v))) types[k] = v as number;
  return {
    data: { totalEvents, uniqueUsers, eventsByType: types },
    period: { from: String(p?.from ?? ""), to: String(p?.to ?? "") },
    stale: o.stale === true,
    computedAt: date(o.computedAt),
  };
}

/** Reads a status event; throws when it is not one. */
export function parseStatus(text: string): Status {
  const o = obj(JSON.parse(text));
  if (o?.state === "ok") return { state: "ok" };
  if (o?.state === "delayed") return { state: "delayed", since: date(o.since), computedAt: date(o.computedAt), reason: typeof o.reason === "string" ? o.reason : "" };
  throw new Error("live: not a status");
}

/** Reads a refused event's error message (the stream closes after it; EventSource retries). */
export function parseRefused(text: string): string {
  try {
    const e = obj(obj(JSON.parse(text))?.error);
    return typeof e?.message === "string" ? e.message : "refused";
  } catch {
    return "refused";
  }
}

/**
 * Freshness of one live feed. Delayed when the server says so (a status
 * event, a stale snapshot) or when nothing arrived for WATCHDOG_INTERVALS
 * refresh intervals (server gone, network); fresh again with the next
 * fresh snapshot or an ok status.
 */
export interface Freshness {
  /** When anything arrived last (an event on the stream, a poll's answer); ms since the epoch. */
  lastArrival: number;
  /** When the last fresh data was computed (or arrived, when the server does not say). */
  lastGood?: number;
  /** Set while the server says the data is delayed: since when. */
  serverDelayedSince?: number;
}

/** Silence for this many refresh intervals means the data may be delayed. */
export const WATCHDOG_INTERVALS = 2;

export type Arrival = { kind: "snapshot"; snap: Snapshot } | { kind: "status"; status: Status } | { kind: "touch" };

export function freshAt(now: number): Freshness {
  return { lastArrival: now };
}

/** The freshness after something arrived at now. */
export function arrive(f: Freshness, a: Arrival, now: number): Freshness {
  switch (a.kind) {
    case "snapshot":
      if (a.snap.stale) {
        const since = a.snap.computedAt?.getTime() ?? f.lastGood ?? now;
        return { lastArrival: now, lastGood: f.lastGood ?? since, serverDelayedSince: f.serverDelayedSince ?? since };
      }
      return { lastArrival: now, lastGood: a.snap.computedAt?.getTime() ?? now };
    case "status":
      if (a.status.state === "ok") return { lastArrival: now, lastGood: f.lastGood };
      {
        const since = a.status.since?.getTime() ?? a.status.computedAt?.getTime() ?? f.lastGood ?? now;
        return { lastArrival: now, lastGood: f.lastGood, serverDelayedSince: f.serverDelayedSince ?? since };
      }
    case "touch": // a poll's 304: the numbers on screen are still the current ones
      return { ...f, lastArrival: now, lastGood: f.serverDelayedSince === undefined ? now : f.lastGood };
  }
}

/** undefined when fresh; otherwise the time the page says the data is delayed since (ms). */
export function delayedSince(f: Freshness, now: number, intervalMs: number): number | undefined {
  if (f.serverDelayedSince !== undefined) return f.serverDelayedSince;
  if (now - f.lastArrival > WATCHDOG_INTERVALS * intervalMs) return f.lastGood ?? f.lastArrival;
  return undefined;
}
