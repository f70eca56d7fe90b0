// The chart's data: the open current bucket split from the complete ones,
// and the previous period laid over the current one. Pure: tested with Vitest.

export interface Point {
  t: string;
  events: number;
  uniqueUsers: number;
}

export type Bucket = "minute" | "hour" | "day";

export const BUCKET_MS: Record<Bucket, number> = { minute: 60e3, hour: 3600e3, day: 86400e3 };

export interface ChartData {
  xs: number[]; // bucket starts, seconds
  events: (number | null)[]; // complete buckets
  eventsOpen: (number | null)[]; // the open bucket, joined to the last complete one
  users: (number | null)[];
  usersOpen: (number | null)[];
  previous: (number | null)[]; // the previous period's events, shifted onto this one
  open: boolean; // the last bucket is still filling
}

/**
 * Splits points into complete buckets and the open one: a bucket is open
 * while its end is after now (its number still grows, so drawn as a line
 * it would dip).
 */
export function chartData(points: Point[], bucket: Bucket, nowMs: number, previous: Point[] = [], spanMs = 0): ChartData {
  const xs = points.map((p) => Date.parse(p.t) / 1000);
  const n = points.length;
  const open = n > 0 && Date.parse(points[n - 1].t) + BUCKET_MS[bucket] > nowMs;
  const split = (f: (p: Point) => number) => {
    const done: (number | null)[] = points.map(f);
    const cur: (number | null)[] = points.map(() => null);
    if (open) {
      cur[n - 1] = done[n - 1];
      if (n > 1) cur[n - 2] = done[n - 2];
      done[n - 1] = null;
    }
    return [done, cur];
  };
  const [events, eventsOpen] = split((p) => p.events);
  const [users, usersOpen] = split((p) => p.uniqueUsers);
  return { xs, events, eventsOpen, users, usersOpen, previous: alignPrevious(xs, previous, spanMs, BUCKET_MS[bucket]), open };
}

/**
 * The previous period's events at the x of the bucket they correspond to
 * (start + span), matched to the nearest bucket within half a bucket (a DST
 * change shifts day buckets by an hour); null where there is none.
 */
export function alignPrevious(xs: number[], previous: Point[], spanMs: number, bucketMs: number): (number | null)[] {
  const out: (number | null)[] = xs.map(() => null);
  if (!xs.length) return out;
  for (const p of previous) {
    const x = (Date.parse(p.t) + spanMs) / 1000;
    let lo = 0;
    let hi = xs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    let best = lo;
    if (lo > 0 && Math.abs(xs[lo - 1] - x) < Math.abs(xs[lo] - x)) best = lo - 1;
    if (Math.abs(xs[best] - x) * 1000 <= bucketMs / 2) out[best] = (out[best] ?? 0) + p.events;
  }
  return out;
}
