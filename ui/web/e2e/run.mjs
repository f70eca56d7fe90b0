// End-to-end tests of the dashboard in a real browser (Debian chromium via
// playwright-core) against a real analyticsd on real PostgreSQL and Redis.
//
//   TEST_DATABASE_URL, TEST_REDIS_URL  the services (make test sets them)
//   ANALYTICSD_BIN                     the server binary (make test builds it)
//   CHROMIUM                           default /usr/bin/chromium
//
// Each run works in its own PostgreSQL schema and Redis key prefix (under
// TEST_KEY_ROOT when set: make test checks that nothing is left under it),
// drops and deletes them at the end. Screenshots go to SCREENSHOT_DIR
// (`make screenshots` sets it to docs/); without it they go to a temporary
// directory that is removed at the end, so a test run changes no tracked file.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const need = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set: run \`make test\`, which starts the services and sets it`);
    process.exit(1);
  }
  return v;
};
const dbBase = need("TEST_DATABASE_URL");
const redisURL = need("TEST_REDIS_URL");
const bin = need("ANALYTICSD_BIN");
const REFRESH_MS = 1000;
const shotDir = process.env.SCREENSHOT_DIR ? resolve(process.env.SCREENSHOT_DIR) : mkdtempSync(join(tmpdir(), "analytics-shots-"));
const shot = (name) => join(shotDir, name);

const schema = "e2e_" + randomBytes(4).toString("hex");
const psql = (sql, url = dbBase) => execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", url, "-c", sql], { encoding: "utf8" }).trim();
const withParam = (url, k, v) => {
  const u = new URL(url);
  u.searchParams.set(k, v);
  return u.toString();
};
const redisPrefix = `${process.env.TEST_KEY_ROOT ?? ""}${schema}:`;
const dbURL = withParam(dbBase, "search_path", schema);
const pgURL = withParam(dbBase, "options", `-csearch_path=${schema}`); // for psql

const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

let server;
let browser;
let failed = 0;
// deleteKeys removes every Redis key under prefix (redis-cli comes with
// redis-server).
const deleteKeys = (prefix) => {
  const cli = (...args) => execFileSync("redis-cli", ["-u", redisURL, ...args], { encoding: "utf8" });
  const keys = cli("--scan", "--pattern", `${prefix}*`).split("\n").filter(Boolean);
  for (let i = 0; i < keys.length; i += 500) cli("UNLINK", ...keys.slice(i, i + 500));
};
// cleanup stops the server and waits for it (it writes the cache until it
// exits), then drops the schema and deletes the keys.
const cleanup = async () => {
  if (server && server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    await exited;
  }
  try {
    psql(`SET client_min_messages = warning; DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } catch {
    /* best effort */
  }
  try {
    deleteKeys(redisPrefix);
  } catch (err) {
    failed++;
    console.log(`FAIL cleanup: Redis keys under ${redisPrefix}: ${err.message}`);
  }
};

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err.message}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function waitFor(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const num = (s) => Number(String(s).replace(/[^0-9.]/g, ""));

try {
  psql(`CREATE SCHEMA ${schema}`);
  const env = {
    ...process.env,
    DATABASE_URL: dbURL,
    REDIS_URL: redisURL,
    REDIS_PREFIX: redisPrefix,
    REFRESH_INTERVAL: "1s",
    ROLLUP_INTERVAL: "200ms",
    LOG_FORMAT: "text",
    LOG_LEVEL: "warn",
  };
  // Thirty days of realistic data (the screenshots show it), rolled up.
  execFileSync(bin, ["seed", "--events", "150000", "--days", "30", "--users", "4000", "--seed", "7"], { env, stdio: "ignore" });
  const port = await freePort();
  const startServer = async () => {
    server = spawn(bin, ["serve"], { env: { ...env, PORT: String(port) }, stdio: ["ignore", "inherit", "inherit"] });
    await waitFor("server up", async () => (await fetch(base + "/health")).ok, 20_000);
  };
  const base = `http://127.0.0.1:${port}`;
  await startServer();

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  const errors = [];
  const watch = (page) => {
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => m.type() === "error" && !/stream|EventSource|ERR_FAILED|ERR_CONNECTION|net::|Failed to fetch|status of 50[23]/.test(m.text()) && errors.push(m.text()));
  };
  const cards = async (page) => ({
    total: num(await page.textContent("#card-total .value")),
    users: num(await page.textContent("#card-users .value")),
  });
  const insert = (n) =>
    psql(`INSERT INTO events (user_id, event_type, created_at) SELECT 'e2e-' || g, 'e2e_click', now() - interval '1 second' FROM generate_series(1, ${n}) g`, pgURL);

  const page = await context.newPage();
  watch(page);

  await step("1. the cards show the summary API's numbers for the preset", async () => {
    await page.goto(base + "/?range=24h");
    await waitFor("badge live", async () => (await page.textContent("#badge")) === "live", 10_000);
    await waitFor("cards = API", async () => {
      const api = await (await fetch(base + "/api/v1/analytics/summary?from=now-24h&to=now")).json();
      const c = await cards(page);
      return c.total === api.data.totalEvents && c.users === api.data.uniqueUsers && c.total > 0 ? c : false;
    }, 5_000);
    const rows = await page.locator("#types tr").count();
    assert(rows >= 5, `the types table has ${rows} rows`);
    // The chart is fetched, not streamed: it may come after the cards.
    await waitFor("chart drawn", async () => (await page.locator("#chart canvas").count()) > 0, 10_000);
  });

  // A live range with a fixed start: a sliding one loses old events at its
  // left edge while we count, which would make "+50" ambiguous.
  const fixed = `/?from=${encodeURIComponent(new Date(Date.now() - 2 * 86400e3).toISOString())}&to=${encodeURIComponent(new Date(Date.now() + 3600e3).toISOString())}`;

  await step("2. events inserted into PostgreSQL show up within two refresh intervals, no reload", async () => {
    await page.goto(base + fixed);
    await waitFor("badge live", async () => (await page.textContent("#badge")) === "live", 10_000);
    const before = (await waitFor("numbers", async () => ((await cards(page)).total > 0 ? cards(page) : false), 10_000)).total;
    await page.evaluate(() => (window.__marker = 1));
    insert(50);
    const t0 = Date.now();
    await waitFor("cards +50", async () => (await cards(page)).total === before + 50, 2 * REFRESH_MS + 1500);
    assert(await page.evaluate(() => window.__marker === 1), "the page reloaded");
    console.log(`     (+50 visible after ${Date.now() - t0} ms)`);
  });

  await step("drill-down: a click on a type filters the page", async () => {
    await page.click("#types .drill >> text=e2e_click");
    await waitFor("filtered", async () => page.url().includes("type=e2e_click") && (await page.locator("#types tr").count()) === 1, 5_000);
    await waitFor("filtered numbers", async () => (await cards(page)).total === 50, 5_000);
    await page.click("#clear-filter");
    await waitFor("unfiltered", async () => (await page.locator("#types tr").count()) > 1, 5_000);
  });

  await step("3. with the stream blocked the badge says polling and numbers still update", async () => {
    const p2 = await context.newPage();
    watch(p2);
    await p2.route("**/analytics/stream**", (route) => route.abort());
    const polled = [];
    p2.on("response", (r) => r.url().includes("/summary?from=now") && polled.push(r.status()));
    await p2.goto(base + fixed);
    await waitFor("badge polling", async () => (await p2.textContent("#badge")) === "polling", 10_000);
    const before = (await waitFor("numbers", async () => ((await cards(p2)).total > 0 ? cards(p2) : false), 10_000)).total;
    insert(30);
    await waitFor("cards +30 while polling", async () => (await cards(p2)).total === before + 30 || false, 4 * REFRESH_MS + 2000).catch((e) => {
      throw new Error(`${e.message}; polls answered ${polled.join(",")}; badge ${polled.length}`);
    });
    await p2.close();
  });

  await step("settings: the page waits for /api/v1/config, offline while it fails, then goes live", async () => {
    const p = await context.newPage();
    watch(p);
    let refuse = true;
    const asked = [];
    p.on("request", (r) => r.url().includes("/api/") && asked.push(new URL(r.url()).pathname));
    await p.route("**/api/v1/config**", (route) =>
      refuse ? route.fulfill({ status: 503, contentType: "application/json", body: '{"error":{"code":"unavailable","message":"e2e"}}' }) : route.continue(),
    );
    await p.goto(base + "/?range=24h");
    await waitFor("badge offline", async () => (await p.textContent("#badge")) === "offline", 10_000);
    assert(asked.every((path) => path === "/api/v1/config"), `asked ${asked.join(", ")} before the settings`);
    assert(await p.isVisible("#presets button"), "no controls while waiting for the settings");
    refuse = false;
    await waitFor("live", async () => (await p.textContent("#badge")) === "live" && (await cards(p)).total > 0, 15_000);
    await p.close();
  });

  await step("settings: without max-age, polls follow the config's refresh interval", async () => {
    const p = await context.newPage();
    watch(p);
    const cfg = await (await fetch(base + "/api/v1/config")).json();
    assert(cfg.refreshIntervalMs === REFRESH_MS, `the config says ${JSON.stringify(cfg)}`);
    await p.route("**/analytics/stream**", (route) => route.abort());
    const polls = [];
    // The feed's polls (the previous period is asked with absolute times), answered without
    // Cache-Control or ETag so that only the config can set their pace.
    await p.route("**/analytics/summary?from=now-1h**", async (route) => {
      polls.push(Date.now());
      const res = await route.fetch();
      const headers = { ...res.headers() };
      delete headers["cache-control"];
      delete headers["etag"];
      await route.fulfill({ response: res, headers });
    });
    await p.goto(base + "/?range=1h");
    await waitFor("badge polling", async () => (await p.textContent("#badge")) === "polling", 10_000);
    const from = polls.length;
    await p.waitForTimeout(4 * REFRESH_MS + 500);
    const n = polls.length - from;
    assert(n >= 3, `${n} polls in ${4 * REFRESH_MS + 500} ms at a refresh interval of ${REFRESH_MS} ms`);
    console.log(`     (${n} polls in ${4 * REFRESH_MS + 500} ms)`);
    await p.close();
  });

  await step("buckets: the chart and the CSV leave the bucket to the server", async () => {
    const p = await context.newPage();
    watch(p);
    const series = p.waitForResponse((r) => r.url().includes("/analytics/timeseries"));
    await p.goto(base + "/?range=7d");
    const res = await series;
    assert(!new URL(res.url()).searchParams.has("bucket"), `the chart asked ${res.url()}`);
    const { bucket } = await res.json();
    assert(["minute", "hour", "day"].includes(bucket), `the server answered bucket ${bucket}`);
    const csv = await p.getAttribute("#csv", "href");
    assert(csv && !new URL(csv, base).searchParams.has("bucket"), `the CSV link is ${csv}`);
    await p.close();
  });

  await step("4. the kiosk URL renders with no controls", async () => {
    const k = await context.newPage();
    watch(k);
    await k.setViewportSize({ width: 1920, height: 1080 });
    await k.goto(base + "/?kiosk=1");
    await waitFor("kiosk live", async () => (await k.textContent("#badge")) === "live", 10_000);
    assert(!(await k.isVisible("#presets")), "presets visible in kiosk mode");
    assert(!(await k.isVisible("#custom")), "custom range visible in kiosk mode");
    const size = await k.evaluate(() => parseFloat(getComputedStyle(document.querySelector("#card-total .value")).fontSize));
    assert(size >= 48, `kiosk numbers are ${size}px`);
    await k.waitForTimeout(800); // let the chart settle
    await k.screenshot({ path: shot("dashboard-kiosk.png") });
    await k.close();
  });

  await step("5. screenshot of the default view", async () => {
    await page.goto(base + "/?range=7d");
    await waitFor("live", async () => (await page.textContent("#badge")) === "live", 10_000);
    await page.waitForTimeout(800);
    await page.screenshot({ path: shot("dashboard.png"), fullPage: true });
  });

  await step("keyboard: presets are reachable with Tab and work with Enter", async () => {
    const kb = await context.newPage();
    watch(kb);
    await kb.goto(base + "/?range=24h");
    await waitFor("live", async () => (await kb.textContent("#badge")) === "live", 10_000);
    let label = "";
    for (let i = 0; i < 12 && label !== "7 days"; i++) {
      await kb.keyboard.press("Tab");
      label = await kb.evaluate(() => document.activeElement?.textContent ?? "");
    }
    assert(label === "7 days", `Tab never reached the 7 days preset (last: ${label})`);
    await kb.keyboard.press("Enter");
    await waitFor("range=7d in the URL", async () => kb.url().includes("range=7d"), 5_000);
    await kb.close();
  });

  await step("phone: no horizontal scrolling at 390 px", async () => {
    const ph = await browser.newPage({ viewport: { width: 390, height: 844 } });
    watch(ph);
    await ph.goto(base + "/?range=24h");
    await waitFor("numbers", async () => (await cards(ph)).total > 0, 10_000);
    const { sw, cw } = await ph.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
    assert(sw <= cw + 1, `the page is ${sw}px wide in a ${cw}px viewport`);
    await ph.close();
  });

  await step("6. an unattended kiosk rides out a server restart and goes live again", async () => {
    const k = await context.newPage();
    watch(k);
    await k.goto(base + "/?kiosk=1" + fixed.replace("/?", "&"));
    await waitFor("live", async () => (await k.textContent("#badge")) === "live", 10_000);
    const before = (await cards(k)).total;
    const exited = new Promise((r) => server.once("exit", r));
    server.kill("SIGTERM");
    await exited;
    await waitFor("badge leaves live", async () => (await k.textContent("#badge")) !== "live", 15_000);
    const seen = await k.textContent("#badge");
    await startServer();
    insert(7);
    await waitFor("live again with new numbers", async () => (await k.textContent("#badge")) === "live" && (await cards(k)).total === before + 7, 60_000);
    console.log(`     (badge went ${seen}, then live again)`);
    await k.close();
  });

  await step("no script errors or CSP violations", async () => {
    assert(errors.length === 0, errors.join("; "));
  });
} catch (err) {
  failed++;
  console.log(`FAIL setup: ${err.stack || err}`);
} finally {
  await browser?.close();
  await cleanup();
  if (!process.env.SCREENSHOT_DIR) rmSync(shotDir, { recursive: true, force: true });
}
console.log(failed ? `${failed} failed` : "all browser tests passed");
process.exit(failed ? 1 : 0);
