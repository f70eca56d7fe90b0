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
import { EventSource as NodeEventSource } from "eventsource";
import { chromium } from "playwright-core";
import { startProxy } from "./pgproxy.mjs";

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
const seedURL = withParam(dbBase, "search_path", schema); // the seed goes straight to PostgreSQL
const pgURL = withParam(dbBase, "options", `-csearch_path=${schema}`); // for psql
// The server reaches PostgreSQL through a proxy that a test cuts.
const pgTarget = new URL(dbBase);
const pgProxy = await startProxy({ host: pgTarget.hostname, port: Number(pgTarget.port || 5432) });
const proxied = new URL(seedURL);
proxied.hostname = "127.0.0.1";
proxied.port = String(pgProxy.port);
const dbURL = proxied.toString();

const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

let server;
let serverB; // a second instance with a tiny stream limit
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
const stopProcess = async (p) => {
  if (p && p.exitCode === null && p.signalCode === null) {
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await exited;
  }
};
const cleanup = async () => {
  await stopProcess(server);
  await stopProcess(serverB);
  await pgProxy.close();
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

const openPages = () => (browser ? browser.contexts().flatMap((c) => c.pages()) : []);

async function step(name, fn) {
  const t0 = Date.now();
  const before = new Set(openPages());
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err.message}`);
  } finally {
    // A step that failed half way must not leave its pages running into the next ones.
    for (const p of openPages()) if (!before.has(p)) await p.close().catch(() => {});
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
// A number's exact value: a card may show 1.23M when every digit does not
// fit, and keeps the exact value in its title ("Total events: 1,234,567").
const exact = async (page, sel) => {
  const el = page.locator(sel);
  const title = await el.getAttribute("title");
  return title ? num(title.slice(title.lastIndexOf(":") + 1)) : num(await el.textContent());
};

// Big, ugly data: 7-digit totals over 30 days and a top event type with a
// 30-character name (and a few more long ones).
const TOP_TYPE = "subscription_renewal_confirmed";
const TYPES = `${TOP_TYPE}:40,page_view:22,click:12,checkout_payment_method_chosen:6,scroll:5,search:4,signup:3,add_to_cart:3,purchase:2,logout:1,password_reset_link_requested:1,profile_avatar_uploaded:1`;

// Standard EventSource clients: the browser's own (in a page of the
// server's origin) and Node's eventsource package. Each records what it
// sees, to check recovery and that no event id comes twice.
const browserES = async (page, url) =>
  page.evaluate((u) => {
    const log = [];
    const es = new EventSource(u);
    for (const type of ["summary", "status", "refused"]) es.addEventListener(type, (e) => log.push({ type, id: e.lastEventId, at: Date.now() }));
    es.onerror = () => log.push({ type: "error", state: es.readyState, at: Date.now() });
    window.__es = (window.__es ?? []).concat([{ es, log }]);
    return window.__es.length - 1;
  }, url);
const browserLog = (page, i) => page.evaluate((n) => ({ log: window.__es[n].log, state: window.__es[n].es.readyState }), i);
const nodeES = (url) => {
  const log = [];
  const es = new NodeEventSource(url);
  for (const type of ["summary", "status", "refused"]) es.addEventListener(type, (e) => log.push({ type, id: e.lastEventId, at: Date.now() }));
  es.onerror = () => log.push({ type: "error", state: es.readyState, at: Date.now() });
  return { es, log, get state() { return es.readyState; } };
};
// The ids of a client's summaries, which must only grow: a duplicate means
// a reconnect was sent what it already had.
const idsGrow = (who, log) => {
  const ids = log.filter((e) => e.type === "summary" && e.id !== "").map((e) => Number(e.id));
  for (let i = 1; i < ids.length; i++) assert(ids[i] > ids[i - 1], `${who}: event id ${ids[i]} after ${ids[i - 1]} (ids ${ids.join(",")})`);
  return ids;
};

try {
  psql(`CREATE SCHEMA ${schema}`);
  const env = {
    ...process.env,
    DATABASE_URL: seedURL,
    REDIS_URL: redisURL,
    REDIS_PREFIX: redisPrefix,
    REFRESH_INTERVAL: "1s",
    ROLLUP_INTERVAL: "200ms",
    LOG_FORMAT: "text",
    LOG_LEVEL: "warn",
  };
  // Thirty days of data with 7-digit totals (the screenshots show it), rolled up.
  const t0 = Date.now();
  execFileSync(bin, ["seed", "--events", "1100000", "--days", "30", "--users", "300000", "--types", TYPES, "--seed", "7"], { env, stdio: "ignore" });
  console.log(`     (seeded 1,100,000 events in ${Date.now() - t0} ms)`);
  env.DATABASE_URL = dbURL;
  const port = await freePort();
  const spawnServer = async (p, extra = {}) => {
    const proc = spawn(bin, ["serve"], { env: { ...env, PORT: String(p), ...extra }, stdio: ["ignore", "inherit", "inherit"] });
    await waitFor("server up", async () => (await fetch(`http://127.0.0.1:${p}/health`)).ok, 20_000);
    return proc;
  };
  const startServer = async () => {
    server = await spawnServer(port);
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
    total: await exact(page, "#card-total .value"),
    users: await exact(page, "#card-users .value"),
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

  // What a screen must never do: cut or ellipsize a number, a label or a
  // name, scroll, or show its headline numbers too small to read across a
  // room. The report is taken in the page; the checks are here.
  const layout = (p) =>
    p.evaluate(() => {
      const visible = (e) => e.offsetParent !== null && e.getClientRects().length > 0 && !e.closest("[hidden]");
      const sel = ".top h1, .meta > *, #delayed, .card h2, .card .value, .card .change, .card .sub, #types th, #types td, #types .drill, caption > span";
      const overflow = [...document.querySelectorAll(sel)]
        .filter((e) => visible(e) && e.scrollWidth > e.clientWidth)
        .map((e) => `${e.id || e.className || e.tagName} "${e.textContent}" ${e.scrollWidth}>${e.clientWidth}`);
      const heads = ["#card-total", "#card-users", "#card-minute", "#card-active"].map((id) => {
        const v = document.querySelector(`${id} .value`);
        return { id, size: parseFloat(getComputedStyle(v).fontSize), text: v.textContent, title: v.title, visible: visible(v) };
      });
      const panel = document.querySelector(".types-panel").getBoundingClientRect();
      const rows = [...document.querySelectorAll("#types tr")].filter((r) => !r.hidden);
      const lastRowBottom = rows.length ? rows[rows.length - 1].getBoundingClientRect().bottom : 0;
      const legend = document.querySelector(".u-legend");
      return {
        overflow,
        heads,
        rows: rows.length,
        allRows: document.querySelectorAll("#types tr").length,
        firstType: rows[0]?.querySelector(".drill").textContent,
        rowsInside: lastRowBottom <= panel.bottom + 0.5,
        sh: document.documentElement.scrollHeight,
        sw: document.documentElement.scrollWidth,
        cw: document.documentElement.clientWidth,
        iw: innerWidth,
        ih: innerHeight,
        legend: !!legend && visible(legend),
      };
    });
  const checkLayout = (r, kiosk) => {
    assert(r.overflow.length === 0, `cut or overflowing: ${r.overflow.join("; ")}`);
    assert(r.sw <= r.cw, `the page is ${r.sw}px wide in a ${r.cw}px viewport`);
    if (!kiosk) return;
    assert(r.sh <= r.ih, `the kiosk scrolls: ${r.sh}px of content in a ${r.ih}px screen`);
    const readable = 0.06 * Math.min(r.iw, r.ih);
    for (const h of r.heads) {
      assert(h.visible, `${h.id} is not shown`);
      assert(h.size >= readable, `${h.id} "${h.text}" is ${h.size}px: under 6% of the screen (${readable.toFixed(1)}px)`);
    }
    assert(r.rows >= 3 && r.rowsInside, `${r.rows} event-type rows shown (inside the panel: ${r.rowsInside})`);
    assert(r.firstType === TOP_TYPE, `the first type row shows ${r.firstType}`);
    assert(!r.legend, "the kiosk chart has a hover legend");
  };
  const screens = [
    { w: 1280, h: 720, kiosk: true, shot: "dashboard-kiosk-720p.png" },
    { w: 1920, h: 1080, kiosk: true, shot: "dashboard-kiosk.png" },
    { w: 3840, h: 2160, kiosk: true },
    { w: 1080, h: 1920, kiosk: true }, // portrait
    { w: 390, h: 844, kiosk: false, shot: "dashboard-phone.png" },
    { w: 1280, h: 900, kiosk: false },
  ];
  for (const sc of screens) {
    await step(`fit: ${sc.kiosk ? "kiosk" : "page"} at ${sc.w}x${sc.h} with 7-digit totals and 30-character names: nothing cut, ${sc.kiosk ? "no scrolling, headline numbers readable across a room" : "no horizontal scrolling"}`, async () => {
      const p = await browser.newPage({ viewport: { width: sc.w, height: sc.h } });
      watch(p);
      await p.goto(base + (sc.kiosk ? "/?kiosk=1&range=30d&title=Subscriptions%20%C2%B7%20operations%20floor" : "/?range=30d"));
      await waitFor("numbers and pulse", async () => (await cards(p)).total >= 1_000_000 && (await p.textContent("#card-active .value")) !== "–" && (await p.locator("#chart canvas").count()) > 0, 15_000);
      await p.evaluate(() => document.fonts.ready);
      await p.waitForTimeout(300); // one more refresh and resize round
      const r = await layout(p);
      checkLayout(r, sc.kiosk);
      const total = r.heads[0];
      const n = num(total.title.slice(total.title.lastIndexOf(":") + 1));
      assert(n >= 1_000_000, `the total is ${n}: not the big data set`);
      assert(num(total.text) === n || /^\d+(\.\d+)?[KMB]$/.test(total.text), `the total shows "${total.text}" for ${n}`);
      if (sc.w >= 3840) assert(num(total.text) === n, `every digit fits on a 4K screen, yet it shows "${total.text}"`);
      console.log(`     (total "${total.text}" at ${total.size}px, ${r.rows} of ${r.allRows} types)`);
      if (sc.shot) await p.screenshot({ path: shot(sc.shot), fullPage: !sc.kiosk });
      if (sc.w === 1920) {
        // The same screen made smaller (a window, a second display): it refits, with no reload.
        await p.setViewportSize({ width: 1280, height: 720 });
        await p.waitForTimeout(500);
        checkLayout(await layout(p), true);
      }
      await p.close();
    });
  }

  await step("chart: the hover legend shows real values, the latest bucket when nothing is hovered; the previous period and the open bucket are drawn", async () => {
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(p);
    await p.goto(base + "/?range=24h");
    await waitFor("chart", async () => (await p.locator(".u-over").count()) > 0 && (await cards(p)).total > 0, 15_000);
    const legend = () =>
      p.evaluate(() => Object.fromEntries([...document.querySelectorAll(".u-legend .u-series")].map((tr) => [tr.querySelector(".u-label")?.textContent ?? "", tr.querySelector(".u-value")?.textContent ?? ""])));
    const idle = await waitFor("legend with values", async () => {
      const l = await legend();
      return /\d/.test(l.Time ?? "") && /\d/.test(l["Events so far"] ?? l.Events ?? "") ? l : false;
    }, 5_000);
    assert("Previous period" in idle && "Events so far" in idle, `legend series: ${Object.keys(idle).join(", ")}`);
    const box = await p.locator(".u-over").boundingBox();
    await p.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    const hovered = await waitFor("hovered legend", async () => {
      const l = await legend();
      return /\d/.test(l.Time ?? "") && /^\d[\d,]*$/.test(l.Events ?? "") && l.Time !== idle.Time ? l : false;
    }, 5_000);
    console.log(`     (hovered: ${JSON.stringify(hovered)})`);
    await p.close();
  });

  await step("deltas: new when the previous period is empty, > 999% beyond", async () => {
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    watch(p);
    // e2e_click exists only since step 2: the previous 24 hours have none.
    await p.goto(base + "/?range=24h&type=e2e_click");
    await waitFor("new", async () => (await p.textContent("#card-total .change")) === "new vs previous", 15_000);
    // One event in the previous period, 2,000 in this one: +199,900%.
    psql(`INSERT INTO events (user_id, event_type, created_at) VALUES ('e2e-b', 'e2e_burst', now() - interval '90 minutes')`, pgURL);
    psql(`INSERT INTO events (user_id, event_type, created_at) SELECT 'e2e-b' || g, 'e2e_burst', now() - interval '1 second' FROM generate_series(1, 2000) g`, pgURL);
    const from = new Date(Date.now() - 3600e3).toISOString();
    const to = new Date(Date.now() + 3600e3).toISOString();
    await p.goto(base + `/?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&type=e2e_burst`);
    await waitFor("capped", async () => (await cards(p)).total === 2000 && (await p.textContent("#card-total .change")) === "▲ > 999% vs previous", 15_000);
    await p.close();
  });

  await step("rotation: ?rotate=24h,30d&type=page_view,click&every=5s cycles ranges and types without reloading", async () => {
    const p = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    watch(p);
    await p.goto(base + "/?kiosk=1&rotate=24h,30d&type=page_view,click&every=5s");
    await p.evaluate(() => (window.__marker = 1));
    const cycle = [
      ["Last 24 h · page_view · 1/4", "now-24h", "page_view"],
      ["Last 24 h · click · 2/4", "now-24h", "click"],
      ["30 days · page_view · 3/4", "now-30d", "page_view"],
      ["30 days · click · 4/4", "now-30d", "click"],
    ];
    // The rotation runs from the page's start: begin with whichever step shows, then follow the cycle round.
    const first = await waitFor("a step of the rotation", async () => {
      const l = await p.textContent("#range-label");
      return cycle.some(([label]) => label === l) ? l : false;
    }, 10_000);
    let i = cycle.findIndex(([label]) => label === first);
    for (let n = 0; n <= cycle.length; n++, i = (i + 1) % cycle.length) {
      const [label, from, type] = cycle[i];
      await waitFor(`label ${label}`, async () => (await p.textContent("#range-label")) === label, 9_000);
      // The numbers are those of the step's range and type, as the API has them.
      await waitFor(`numbers of ${label}`, async () => {
        const api = await (await fetch(`${base}/api/v1/analytics/summary?from=${from}&to=now&event_type=${type}`)).json();
        const c = await cards(p);
        return (await p.textContent("#range-label")) === label && c.total === api.data.totalEvents && c.total > 0;
      }, 4_500);
    }
    assert(await p.evaluate(() => window.__marker === 1), "the page reloaded");
    assert(p.url().endsWith("/?kiosk=1&rotate=24h,30d&type=page_view,click&every=5s"), `the URL changed to ${p.url()}`);
    await p.close();
  });

  await step("delayed: with PostgreSQL cut, the kiosk says 'data delayed since …' within two intervals, dims the numbers, and clears by itself", async () => {
    const k = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    watch(k);
    await k.goto(base + "/?kiosk=1&range=24h&title=Operations");
    await waitFor("live and fresh", async () => (await k.textContent("#badge")) === "live" && (await cards(k)).total > 0 && (await k.isHidden("#delayed")), 15_000);
    await k.waitForTimeout(REFRESH_MS); // fresh for a whole interval
    assert(await k.isHidden("#delayed"), "the banner shows while PostgreSQL is up");
    pgProxy.cut();
    const cutAt = Date.now();
    try {
      await waitFor("banner", async () => await k.isVisible("#delayed"), 2 * REFRESH_MS + 1500);
      const after = Date.now() - cutAt;
      const text = await k.textContent("#delayed");
      assert(/^Data delayed since \d\d:\d\d:\d\d$/.test(text), `the banner says "${text}"`);
      const opacity = await k.evaluate(() => Number(getComputedStyle(document.querySelector("#card-total .value")).opacity));
      assert(opacity < 1, `the numbers are not dimmed (opacity ${opacity})`);
      checkLayout(await layout(k), true);
      await k.waitForTimeout(2 * REFRESH_MS); // it stays while the database is away
      assert(await k.isVisible("#delayed"), "the banner went away while PostgreSQL is still cut");
      await k.screenshot({ path: shot("dashboard-delayed.png") });
      console.log(`     (banner after ${after} ms: "${text}")`);
    } finally {
      pgProxy.restore();
    }
    const restored = Date.now();
    await waitFor("banner clears", async () => await k.isHidden("#delayed"), 20_000);
    assert(!(await k.evaluate(() => document.body.dataset.delayed)), "the numbers are still dimmed");
    console.log(`     (cleared ${Date.now() - restored} ms after PostgreSQL came back)`);
    await k.close();
  });

  await step("standard EventSource (the browser's and Node's eventsource) recovers from an over-limit answer, without duplicate ids", async () => {
    const portB = await freePort();
    serverB = await spawnServer(portB, { STREAM_MAX_CLIENTS: "2" });
    const baseB = `http://127.0.0.1:${portB}`;
    const url = `${baseB}/api/v1/analytics/stream?from=now-1h&to=now`;
    // Two holders take the two slots; once they leave, both refused
    // clients must get in by themselves.
    const holders = [nodeES(url), nodeES(url)];
    const p = await browser.newPage();
    let node;
    try {
      await waitFor("the holders get the two slots", async () => holders.every((h) => h.log.some((e) => e.type === "summary")), 10_000);
      await p.goto(baseB + "/api/v1/config"); // a page of the server's origin
      const b = await browserES(p, url);
      node = nodeES(url);
      await waitFor("both are refused", async () => (await browserLog(p, b)).log.some((e) => e.type !== "summary") && node.log.some((e) => e.type !== "summary"), 10_000);
      assert(!(await browserLog(p, b)).log.some((e) => e.type === "summary") && !node.log.some((e) => e.type === "summary"), "a client got a summary beyond STREAM_MAX_CLIENTS=2");
      for (const h of holders) h.es.close();
      const got = async () => (await browserLog(p, b)).log.some((e) => e.type === "summary") && node.log.some((e) => e.type === "summary");
      await waitFor("both get summaries once the slot is free", got, 20_000).catch(async (e) => {
        const bl = await browserLog(p, b);
        throw new Error(`${e.message}; browser readyState ${bl.state}, saw ${bl.log.map((x) => x.type).join(",")}; node readyState ${node.state}, saw ${node.log.map((x) => x.type).join(",")}`);
      });
      idsGrow("browser", (await browserLog(p, b)).log);
      idsGrow("node", node.log);
    } finally {
      for (const h of holders) h.es.close();
      node?.es.close();
      await p.close();
      await stopProcess(serverB);
    }
  });

  await step("6. an unattended kiosk and standard EventSources ride out a server restart, with no duplicate event ids", async () => {
    const k = await context.newPage();
    watch(k);
    await k.goto(base + "/?kiosk=1" + fixed.replace("/?", "&"));
    await waitFor("live", async () => (await k.textContent("#badge")) === "live", 10_000);
    const before = (await cards(k)).total;
    const url = `${base}/api/v1/analytics/stream?from=now-1h&to=now`;
    const esPage = await context.newPage();
    await esPage.goto(base + "/api/v1/config");
    const b = await browserES(esPage, url);
    const node = nodeES(url);
    try {
      await waitFor("both streams deliver", async () => (await browserLog(esPage, b)).log.some((e) => e.type === "summary") && node.log.some((e) => e.type === "summary"), 10_000);
      const exited = new Promise((r) => server.once("exit", r));
      server.kill("SIGTERM");
      await exited;
      const killedAt = Date.now();
      await waitFor("badge leaves live", async () => (await k.textContent("#badge")) !== "live", 15_000);
      const seen = await k.textContent("#badge");
      await waitFor("the kiosk says the data is delayed", async () => await k.isVisible("#delayed"), 2 * REFRESH_MS + 3000);
      await startServer();
      insert(7);
      let shown;
      await waitFor("live again with new numbers", async () => {
        shown = { badge: await k.textContent("#badge"), total: (await cards(k)).total, want: before + 7 };
        return shown.badge === "live" && shown.total === shown.want;
      }, 60_000).catch(async (e) => {
        const api = await (await fetch(base + "/api/v1/analytics/summary" + fixed.slice(1))).text().catch((err) => String(err));
        throw new Error(`${e.message}; the kiosk showed ${JSON.stringify(shown)}, the summary API says ${api.slice(0, 300)}`);
      });
      await waitFor("the banner clears", async () => await k.isHidden("#delayed"), 10_000);
      const after = (log) => log.some((e) => e.type === "summary" && e.at > killedAt);
      await waitFor("both EventSources deliver again", async () => after((await browserLog(esPage, b)).log) && after(node.log), 30_000).catch(async (e) => {
        const bl = await browserLog(esPage, b);
        throw new Error(`${e.message}; browser readyState ${bl.state}, saw ${bl.log.map((x) => x.type).join(",")}; node readyState ${node.state}, saw ${node.log.map((x) => x.type).join(",")}`);
      });
      const ids = idsGrow("browser", (await browserLog(esPage, b)).log);
      idsGrow("node", node.log);
      console.log(`     (badge went ${seen}, then live again; browser ids ${ids.join(",")})`);
    } finally {
      node.es.close();
      await esPage.close();
      await k.close();
    }
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
