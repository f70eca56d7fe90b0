import { describe, expect, it } from "vitest";
import { initial, next, nextPollMs, polls, probeNow, type FeedEvent, type FeedState } from "./feed";

const run = (...events: FeedEvent[]): FeedState => events.reduce(next, initial);

describe("feed fallback", () => {
  it("is live once the stream delivers", () => {
    expect(run("message").mode).toBe("live");
  });

  it("reconnects once, then falls back to polling", () => {
    expect(run("message", "stream-error").mode).toBe("reconnecting");
    expect(run("message", "stream-error", "message").mode).toBe("live");
    expect(run("message", "stream-error", "stream-error").mode).toBe("polling");
  });

  it("polls at once when the server refuses the stream", () => {
    expect(run("stream-closed").mode).toBe("polling");
  });

  it("goes offline when polls fail, and back when one works", () => {
    const off = run("stream-closed", "poll-fail", "poll-fail");
    expect(off.mode).toBe("offline");
    expect(polls(off.mode)).toBe(true);
    expect(next(off, "poll-ok").mode).toBe("polling");
  });

  it("tries the stream at once when the server answers again after failed polls", () => {
    const off = run("message", "stream-error", "stream-error", "poll-fail", "poll-fail");
    const back = next(off, "poll-ok");
    expect(probeNow(off.mode, back.mode)).toBe(true);
    // Not on every poll while polling (the probe timer does that), nor when the stream first fails.
    expect(probeNow(back.mode, next(back, "poll-ok").mode)).toBe(false);
    expect(probeNow("reconnecting", "polling")).toBe(false);
  });

  it("returns to the stream when a probe delivers", () => {
    const s = run("stream-closed", "poll-ok", "stream-error", "probe-ok");
    expect(s.mode).toBe("live");
    expect(s.streamErrors).toBe(0);
  });
});

describe("poll timing", () => {
  it("follows the summary's max-age, within 1 s to 60 s", () => {
    expect(nextPollMs("max-age=3", 5000)).toBe(3000);
    expect(nextPollMs("max-age=0", 5000)).toBe(1000);
    expect(nextPollMs("max-age=600", 5000)).toBe(60_000);
    expect(nextPollMs(null, 5000)).toBe(5000);
  });
});
