// Number and change formatting. Pure: tested with Vitest.

const whole = new Intl.NumberFormat("en-US");
const compactFmt = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const compact3 = new Intl.NumberFormat("en-US", { notation: "compact", maximumSignificantDigits: 3 });
const oneDecimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

/** Integers with separators up to 10 million, compact beyond (12.3M). */
export function count(n: number): string {
  return Math.abs(n) >= 1e7 ? compactFmt.format(n) : whole.format(Math.round(n));
}

/** Every digit, with separators: 1,234,567. */
export function full(n: number): string {
  return whole.format(Math.round(n));
}

/** Three significant digits: 1.23M, 45.6K, 999 (what a box shows when every digit does not fit). */
export function compact(n: number): string {
  return Math.abs(n) < 1000 ? whole.format(Math.round(n)) : compact3.format(n);
}

export function rate(n: number): string {
  return n >= 100 ? whole.format(Math.round(n)) : oneDecimal.format(n);
}

/** Beyond this change, the figure says "> 999%": a near-empty previous period makes any number meaningless. */
export const CHANGE_CAP_PCT = 999;

export interface Change {
  text: string; // "▲ 12.5%", "▼ 3%", "▲ > 999%", "new", "—"
  dir: "up" | "down" | "flat" | "none";
}

/** The change of cur against prev, as shown under a card. */
export function change(cur: number, prev: number | undefined): Change {
  if (prev === undefined || Number.isNaN(prev)) return { text: "—", dir: "none" };
  if (prev === 0) return cur === 0 ? { text: "±0%", dir: "flat" } : { text: "new", dir: "up" };
  const pct = ((cur - prev) / prev) * 100;
  if (Math.abs(pct) < 0.05) return { text: "±0%", dir: "flat" };
  if (pct > CHANGE_CAP_PCT) return { text: `▲ > ${CHANGE_CAP_PCT}%`, dir: "up" };
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

/** 14:02:31 on the 24-hour clock, local time (the clock and the delayed banner). */
export function clock(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
