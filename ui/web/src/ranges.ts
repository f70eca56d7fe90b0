// Range presets and the URL state of the page. Pure: tested with Vitest.

export type PresetId = "15m" | "1h" | "24h" | "today" | "yesterday" | "7d" | "30d" | "90d";

export interface Preset {
  id: PresetId;
  label: string;
}

export const PRESETS: Preset[] = [
  { id: "15m", label: "Last 15 min" },
  { id: "1h", label: "Last hour" },
  { id: "24h", label: "Last 24 h" },
  { id: "today", label: "Today" },
  { id: "yesterday", label: "Yesterday" },
  { id: "7d", label: "7 days" },
  { id: "30d", label: "30 days" },
  { id: "90d", label: "90 days" },
];

export const DEFAULT_PRESET: PresetId = "24h";

/** What the page shows; lives in the URL so that a link reproduces the view. */
export interface ViewState {
  preset?: PresetId;
  from?: string; // custom absolute range (ISO 8601), inclusive
  to?: string;
  type?: string; // event_type drill-down
  kiosk: boolean;
  token?: string; // a read key, for servers with READ_AUTH=required (?access_token=)
}

/** A range resolved for the API: from/to parameters plus the absolute instants. */
export interface Resolved {
  from: string; // API parameter: ISO or relative (now-24h)
  to: string;
  start: Date;
  end: Date;
  live: boolean; // ends now: worth a live stream
  label: string;
}

const relative: Partial<Record<PresetId, [string, number]>> = {
  "15m": ["now-15m", 15 * 60e3],
  "1h": ["now-1h", 3600e3],
  "24h": ["now-24h", 86400e3],
  "7d": ["now-7d", 7 * 86400e3],
  "30d": ["now-30d", 30 * 86400e3],
  "90d": ["now-90d", 90 * 86400e3],
};

function localMidnight(d: Date, addDays = 0): Date {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate() + addDays, 0, 0, 0, 0);
}

export function isPreset(s: string | null): s is PresetId {
  return PRESETS.some((p) => p.id === s);
}

export function parseState(q: URLSearchParams): ViewState {
  const st: ViewState = { kiosk: q.get("kiosk") === "1" };
  const from = q.get("from");
  const to = q.get("to");
  const range = q.get("range");
  if (from && to && !Number.isNaN(Date.parse(from)) && !Number.isNaN(Date.parse(to)) && Date.parse(from) <= Date.parse(to)) {
    st.from = from;
    st.to = to;
  } else {
    st.preset = isPreset(range) ? range : DEFAULT_PRESET;
  }
  const type = q.get("type");
  if (type && type.length <= 100) st.type = type;
  const token = q.get("access_token");
  if (token) st.token = token;
  return st;
}

export function toSearch(st: ViewState): string {
  const q = new URLSearchParams();
  if (st.from && st.to) {
    q.set("from", st.from);
    q.set("to", st.to);
  } else if (st.preset && st.preset !== DEFAULT_PRESET) {
    q.set("range", st.preset);
  }
  if (st.type) q.set("type", st.type);
  if (st.kiosk) q.set("kiosk", "1");
  if (st.token) q.set("access_token", st.token);
  const s = q.toString();
  return s ? "?" + s : "";
}

/** Resolves the state at now. */
export function resolve(st: ViewState, now: Date): Resolved {
  if (st.from && st.to) {
    const start = new Date(st.from);
    const end = new Date(st.to);
    return { from: start.toISOString(), to: end.toISOString(), start, end, live: end.getTime() >= now.getTime(), label: "Custom range" };
  }
  const id = st.preset ?? DEFAULT_PRESET;
  const label = PRESETS.find((p) => p.id === id)!.label;
  const rel = relative[id];
  if (rel) {
    return { from: rel[0], to: "now", start: new Date(now.getTime() - rel[1]), end: now, live: true, label };
  }
  if (id === "today") {
    const start = localMidnight(now);
    return { from: start.toISOString(), to: "now", start, end: now, live: true, label };
  }
  // yesterday: local midnight to local midnight, inclusive end
  const start = localMidnight(now, -1);
  const end = new Date(localMidnight(now).getTime() - 1);
  return { from: start.toISOString(), to: end.toISOString(), start, end, live: false, label };
}

/** The period of the same length just before r, for the change figures. */
export function previous(r: Resolved): { from: string; to: string } {
  const span = r.end.getTime() - r.start.getTime();
  const end = new Date(r.start.getTime() - 1);
  const start = new Date(end.getTime() - span);
  return { from: start.toISOString(), to: end.toISOString() };
}

/** Minutes in a range (at least 1), for events per minute. */
export function minutes(r: Resolved): number {
  return Math.max(1, (r.end.getTime() - r.start.getTime()) / 60e3);
}
