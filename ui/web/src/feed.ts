// The live feed: one EventSource on the stream endpoint, falling back to
// polling the summary endpoint (with If-None-Match) when the stream fails,
// and going back to the stream when it works again.
import { parseRefused, parseSnapshot, parseStatus, type Snapshot, type Status } from "./live";

export type Mode = "connecting" | "live" | "reconnecting" | "polling" | "offline";

export type FeedEvent =
  | "message" // a snapshot arrived on the stream
  | "stream-error" // the EventSource errored and the browser retries
  | "stream-closed" // the EventSource gave up (non-200 answer)
  | "poll-ok"
  | "poll-fail"
  | "probe-ok"; // a trial stream delivered while polling

/** After this many stream errors without a message in between, poll. */
export const STREAM_ERRORS_BEFORE_POLLING = 2;
/** After this many failed polls in a row, say offline (and keep trying). */
export const POLL_FAILURES_BEFORE_OFFLINE = 2;

export interface FeedState {
  mode: Mode;
  streamErrors: number;
  pollFailures: number;
}

export const initial: FeedState = { mode: "connecting", streamErrors: 0, pollFailures: 0 };

/** The state machine of the feed. Pure: tested with Vitest. */
export function next(s: FeedState, e: FeedEvent): FeedState {
  switch (e) {
    case "message":
    case "probe-ok":
      return { mode: "live", streamErrors: 0, pollFailures: 0 };
    case "stream-error": {
      if (s.mode === "polling" || s.mode === "offline") return s; // a failed probe
      const errors = s.streamErrors + 1;
      return errors >= STREAM_ERRORS_BEFORE_POLLING ? { ...s, mode: "polling", streamErrors: errors } : { ...s, mode: "reconnecting", streamErrors: errors };
    }
    case "stream-closed":
      return s.mode === "offline" ? s : { ...s, mode: "polling" };
    case "poll-ok":
      return s.mode === "live" ? s : { ...s, mode: "polling", pollFailures: 0 };
    case "poll-fail": {
      const failures = s.pollFailures + 1;
      return { ...s, pollFailures: failures, mode: failures >= POLL_FAILURES_BEFORE_OFFLINE ? "offline" : s.mode };
    }
  }
}

/**
 * Should a trial stream be opened at once, not at the next probe? When the
 * server answers again after polls failed (offline → polling): it is
 * probably back, and a wall screen should not wait up to a probe period to
 * be live again.
 */
export function probeNow(before: Mode, after: Mode): boolean {
  return before === "offline" && after === "polling";
}

/** Is the feed expected to poll in this mode? */
export function polls(m: Mode): boolean {
  return m === "polling" || m === "offline";
}

export type { Snapshot };

export interface FeedOptions {
  streamURL: string;
  summaryURL: string;
  intervalMs: number;
  probeEveryMs: number;
  onSnapshot: (s: Snapshot) => void;
  onMode: (m: Mode) => void;
  onTouch: () => void; // the numbers were confirmed current (304)
  onStatus?: (s: Status) => void; // the server says the range is delayed, or ok again
  /** false: poll only, never hold a stream (a browser has 6 HTTP/1.1 connections per host for every tab). */
  stream?: boolean;
}

export class Feed {
  private st: FeedState = initial;
  private es?: EventSource;
  private probe?: EventSource;
  private pollTimer?: number;
  private probeTimer?: number;
  private etag = "";
  private stopped = false;

  constructor(private o: FeedOptions) {}

  start(): void {
    this.o.onMode(this.st.mode);
    if (this.o.stream === false || typeof EventSource === "undefined") {
      this.apply("stream-closed");
      return;
    }
    this.openStream();
  }

  stop(): void {
    this.stopped = true;
    this.es?.close();
    this.probe?.close();
    clearTimeout(this.pollTimer);
    clearInterval(this.probeTimer);
  }

  private apply(e: FeedEvent): void {
    if (this.stopped) return;
    const before = this.st.mode;
    this.st = next(this.st, e);
    if (this.st.mode === before) return;
    this.o.onMode(this.st.mode);
    if (polls(this.st.mode) && !polls(before)) {
      this.es?.close();
      this.es = undefined;
      this.poll();
      if (this.o.stream !== false) this.probeTimer = window.setInterval(() => this.tryStream(), this.o.probeEveryMs);
    }
    if (this.st.mode === "live" && polls(before)) {
      clearTimeout(this.pollTimer);
      clearInterval(this.probeTimer);
    }
    if (probeNow(before, this.st.mode) && this.o.stream !== false) this.tryStream();
  }

  private openStream(): void {
    const es = new EventSource(this.o.streamURL);
    this.es = es;
    this.listen(es);
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) this.apply("stream-closed");
      else this.apply("stream-error");
    };
  }

  /** The events of a stream that is the feed: summaries, status and a refusal (the browser then retries). */
  private listen(es: EventSource): void {
    es.addEventListener("summary", (ev) => {
      this.o.onSnapshot(parseSnapshot((ev as MessageEvent).data));
      this.apply("message");
    });
    es.addEventListener("status", (ev) => {
      this.o.onStatus?.(parseStatus((ev as MessageEvent).data));
      this.apply("message");
    });
    es.addEventListener("refused", (ev) => {
      console.warn("analyticsd: stream refused:", parseRefused((ev as MessageEvent).data));
    });
  }

  /** While polling: open a trial stream; if it delivers, it becomes the feed. */
  private tryStream(): void {
    if (this.probe || this.stopped) return;
    const es = new EventSource(this.o.streamURL);
    this.probe = es;
    const give = window.setTimeout(() => {
      es.close();
      this.probe = undefined;
    }, 10_000);
    es.addEventListener("summary", (ev) => {
      clearTimeout(give);
      this.probe = undefined;
      this.o.onSnapshot(parseSnapshot((ev as MessageEvent).data));
      this.es = es;
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) this.apply("stream-closed");
        else this.apply("stream-error");
      };
      this.listen(es);
      this.apply("probe-ok");
    }, { once: true });
    es.onerror = () => {
      clearTimeout(give);
      es.close();
      this.probe = undefined;
    };
  }

  private async poll(): Promise<void> {
    if (this.stopped || !polls(this.st.mode)) return;
    let wait = this.o.intervalMs;
    try {
      const res = await fetch(this.o.summaryURL, { headers: this.etag ? { "If-None-Match": this.etag } : {}, cache: "no-store" });
      wait = nextPollMs(res.headers.get("Cache-Control"), this.o.intervalMs);
      if (res.status === 304) {
        this.o.onTouch();
        this.apply("poll-ok");
      } else if (res.ok) {
        this.etag = res.headers.get("ETag") ?? "";
        this.o.onSnapshot(parseSnapshot(await res.json()));
        this.apply("poll-ok");
      } else {
        this.apply("poll-fail");
      }
    } catch {
      this.apply("poll-fail");
    }
    if (!this.stopped && polls(this.st.mode)) {
      if (this.st.mode === "offline") wait = Math.min(30_000, this.o.intervalMs * 2 ** this.st.pollFailures);
      this.pollTimer = window.setTimeout(() => this.poll(), wait);
    }
  }
}

/**
 * When to poll next: the summary's max-age runs to the server's next
 * refresh, so polls follow the server's REFRESH_INTERVAL whatever it is.
 */
export function nextPollMs(cacheControl: string | null, fallbackMs: number): number {
  const m = /max-age=(\d+)/.exec(cacheControl ?? "");
  if (!m) return fallbackMs;
  return Math.min(60_000, Math.max(1000, Number(m[1]) * 1000));
}
