// Number and change formatting. Pure: tested with Vitest.

const whole = new Intl.NumberFormat("en-US");
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const oneDecimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

/** Integers with separators up to 10 million, compact beyond (12.3M). */
export function count(n: number): string {
  return Math.abs(n) >= 1e7 ? compact.format(n) : whole.format(Math.round(n));
}

export function rate(n: number): string {
  return n >= 100 ? whole.format(Math.round(n)) : oneDecimal.format(n);
}

export interface Change {
  text: string; // "▲ 12.5%", "▼ 3%", "new", "—"
  dir: "up" | "down" | "flat" | "none";
}

/** The change of cur against prev, as shown under a card. */
export function change(cur: number, prev: number | undefined): Change {
  if (prev === undefined || Number.isNaN(prev)) return { text: "—", dir: "none" };
  if (prev === 0) return cur === 0 ? { text: "±0%", dir: "flat" } : { text: "new", dir: "up" };
  const pct = ((cur - prev) / prev) * 100;
  if (Math.abs(pct) < 0.05) return { text: "±0%", dir: "flat" };
  const v = Math.abs(pct) >= 10 ? Math.round(Math.abs(pct)).toString() : Math.abs(pct).toFixed(1);
  return pct > 0 ? { text: `▲ ${v}%`, dir: "up" } : { text: `▼ ${v}%`, dir: "down" };
}

/** "just now", "12 s ago", "3 min ago". */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 2) return "just now";
  if (s < 90) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min ago`;
  return `${Math.round(m / 60)} h ago`;
}
