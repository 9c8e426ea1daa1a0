#!/usr/bin/env node
// End-to-end test of the dashboard against a running `fedics demo`, driving Debian's
// Chromium through playwright-core. Every step runs (a failed step is reported and the
// next one tries its luck); the exit status is non-zero when any step failed or any
// page logged a console error. The last line printed is one JSON object with the figures.
//
// Environment:
//   FEDICS_URL        the demo, e.g. http://127.0.0.1:8011 (required)
//   FEDICS_USER       default admin
//   FEDICS_PASSWORD   required
//   SCREENSHOT_DIR    default web/e2e/screenshots
//   CHROMIUM          default /usr/bin/chromium
//   E2E_ALERT_TIMEOUT_S  wait for a new live alert, default 180
//   E2E_FL_TIMEOUT_S     wait for a completed round with ε, default 180
//   E2E_SOAK_S           seconds the overview stays open for the heap figure, default 20
//   E2E_VIEWER_USER, E2E_VIEWER_PASSWORD  also check a viewer is offered no action (optional)
//   E2E_HEADFUL=1        show the browser (debugging)
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const env = process.env;
const BASE = (env.FEDICS_URL ?? "").replace(/\/+$/, "");
const USER = env.FEDICS_USER ?? "admin";
const PASSWORD = env.FEDICS_PASSWORD ?? "";
const SHOTS = resolve(env.SCREENSHOT_DIR ?? resolve(here, "screenshots"));
const CHROME = env.CHROMIUM ?? "/usr/bin/chromium";
const ALERT_TIMEOUT = Number(env.E2E_ALERT_TIMEOUT_S ?? 180) * 1000;
const FL_TIMEOUT = Number(env.E2E_FL_TIMEOUT_S ?? 180) * 1000;
const SOAK_S = Number(env.E2E_SOAK_S ?? 20);

if (!BASE || !PASSWORD) {
  console.error("e2e: set FEDICS_URL (e.g. http://127.0.0.1:8011) and FEDICS_PASSWORD");
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

const started = Date.now();
const log = (...a) => console.log(`[e2e +${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a);
const steps = {};
const figures = {};
const consoleErrors = [];
let currentStep = "start";

async function step(name, fn) {
  currentStep = name;
  const t = Date.now();
  log(`▶ ${name}`);
  try {
    await fn();
    steps[name] = "ok";
    log(`✔ ${name} (${Date.now() - t} ms)`);
    return true;
  } catch (e) {
    const msg = (e && e.message ? e.message : String(e)).split("\n")[0];
    steps[name] = `failed: ${msg}`;
    log(`✘ ${name}: ${msg}`);
    return false;
  }
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

const browser = await chromium.launch({
  executablePath: CHROME,
  headless: env.E2E_HEADFUL !== "1",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--enable-precise-memory-info",
  ].filter((a) => env.E2E_HEADFUL !== "1" || a !== "--headless"),
});
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: "dark" });
const page = await context.newPage();
page.setDefaultTimeout(20_000);
page.on("console", (m) => {
  if (m.type() === "error") {
    const loc = m.location();
    consoleErrors.push({ step: currentStep, url: page.url(), text: m.text(), at: loc?.url });
    log(`console error on ${page.url()}: ${m.text()}`);
  }
});
page.on("pageerror", (e) => {
  consoleErrors.push({ step: currentStep, url: page.url(), text: `uncaught: ${e.message}` });
  log(`page error on ${page.url()}: ${e.message}`);
});

const shot = async (name) => {
  try {
    await page.screenshot({ path: resolve(SHOTS, `${name}.png`), fullPage: true });
  } catch (e) {
    log(`screenshot ${name} failed: ${e.message}`);
  }
};
const nav = async (label) => {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: label, exact: true }).click();
};
/** fetch() inside the page with the session's token (for cross-checks with the API). */
const apiGet = (path) =>
  page.evaluate(async (p) => {
    const s = JSON.parse(sessionStorage.getItem("fedics.session") ?? "null");
    const r = await fetch(p, { headers: s ? { authorization: `Bearer ${s.token}` } : {} });
    return { status: r.status, body: r.ok ? await r.json() : null };
  }, path);

let ackedAlert = null;

await step("login", async () => {
  await page.goto(`${BASE}/`);
  await page.waitForURL(/\/login/);
  await page.getByLabel("User name").fill(USER);
  await page.getByLabel("Password").fill("definitely-wrong-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Wrong user name or password.").waitFor();
  await shot("01-login");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
});

// Rejected login answers 401, which Chromium logs as a failed resource load: that one is
// expected, not a page error.
for (let i = consoleErrors.length - 1; i >= 0; i--) {
  if (consoleErrors[i].step === "login" && /status of 401/.test(consoleErrors[i].text)) consoleErrors.splice(i, 1);
}

await step("overview first load", async () => {
  const t0 = Date.now();
  await page.goto(`${BASE}/`, { waitUntil: "load" });
  const loaded = Date.now() - t0;
  await page.locator('[data-testid="open-critical"]').waitFor();
  const firstData = Date.now() - t0;
  const timing = await page.evaluate(() => {
    const n = performance.getEntriesByType("navigation")[0];
    return n
      ? { ttfb: n.responseStart, dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd, now: performance.now() }
      : null;
  });
  figures.overview_load_wall_ms = loaded;
  figures.overview_first_data_ms = firstData;
  if (timing) {
    figures.overview_ttfb_ms = Math.round(timing.ttfb);
    figures.overview_dom_content_loaded_ms = Math.round(timing.dcl);
    figures.overview_load_event_ms = Math.round(timing.load);
    figures.overview_first_data_perf_ms = Math.round(timing.now);
  }
});

await step("per-facility traffic and anomaly charts render", async () => {
  const t0 = Date.now();
  const handle = await page.waitForFunction(
    () => {
      const el = document.querySelector("#rates [data-testid=rates-facilities]");
      const names = el?.getAttribute("data-facilities") ?? "";
      return names && document.querySelectorAll("#rates canvas").length >= 2 ? names : null;
    },
    null,
    { timeout: 60_000, polling: 250 },
  );
  const names = String(await handle.jsonValue()).split(",").filter(Boolean);
  figures.rates_chart_ms = Date.now() - t0;
  figures.rates_facilities = names;
  check(names.length >= 1, "no facility in the rates chart");
  const r = await apiGet("/api/pipeline/counters");
  check(r.status === 200, `/api/pipeline/counters answered ${r.status}`);
  const last = r.body.samples?.at(-1)?.counters?.facilities ?? {};
  for (const n of names) check(n in last, `charted facility ${n} is not in the pipeline's counters`);
  log(`rates charted for ${names.join(", ")} (${r.body.samples.length} samples on the server)`);
});

await step("live alert appears without reload", async () => {
  await page.locator('[data-connection="open"]').waitFor({ timeout: 30_000 });
  const marker = await page.evaluate(() => (window.__e2eMarker = Math.random()));
  const before = new Set(await page.locator("[data-testid=live-feed] [data-alert-id]").evaluateAll((els) => els.map((e) => e.getAttribute("data-alert-id"))).catch(() => []));
  log(`feed holds ${before.size} alerts; waiting for a new one (up to ${ALERT_TIMEOUT / 1000} s)`);
  const t0 = Date.now();
  const handle = await page.waitForFunction(
    (known) => {
      const ids = [...document.querySelectorAll("[data-testid=live-feed] [data-alert-id]")].map((e) => e.getAttribute("data-alert-id"));
      return ids.find((id) => !known.includes(id)) ?? null;
    },
    [...before],
    { timeout: ALERT_TIMEOUT, polling: 250 },
  );
  const id = await handle.jsonValue();
  figures.live_alert_wait_ms = Date.now() - t0;
  check((await page.evaluate(() => window.__e2eMarker)) === marker, "the page was reloaded");
  const r = await apiGet(`/api/alerts/${id}`);
  check(r.status === 200, `the new feed entry ${id} is not an alert the API knows (${r.status})`);
  log(`new alert ${id}: ${r.body.title}`);
  await shot("02-overview");
});

await step("filters narrow the alerts table", async () => {
  await nav("Alerts");
  await page.getByRole("heading", { name: "Alerts", level: 1 }).waitFor();
  const table = page.locator("[data-testid=alerts-table]");
  await table.waitFor();
  const total = async () => Number((await page.locator("[data-testid=alert-total]").innerText()).match(/\d+/)?.[0] ?? NaN);
  const waitSettled = () => page.waitForFunction(() => !document.querySelector("[data-testid=alert-total]")?.textContent?.includes("updating"));
  const all = await total();
  check(all > 0, "no alert in the table");
  const rows = await table.locator("tbody tr").evaluateAll((els) =>
    els.map((e) => ({ severity: e.getAttribute("data-severity"), facility: e.getAttribute("data-facility") })),
  );
  // A filter value that some shown row lacks, so the total must drop.
  const pick = (k) => {
    const counts = new Map();
    for (const r of rows) counts.set(r[k], (counts.get(r[k]) ?? 0) + 1);
    return counts.size > 1 ? [...counts.entries()].sort((a, b) => a[1] - b[1])[0][0] : null;
  };
  let field = "Severity";
  let value = pick("severity");
  let attr = "data-severity";
  if (!value) {
    field = "Facility";
    value = pick("facility");
    attr = "data-facility";
  }
  if (!value) {
    field = "Severity";
    value = rows[0].severity;
    attr = "data-severity";
  }
  await page.getByLabel(field, { exact: true }).selectOption(value);
  await page.waitForURL(new RegExp(`${field === "Severity" ? "severity" : "facility"}=`));
  await waitSettled();
  await page.waitForFunction(
    ([a, v]) => {
      const rs = [...document.querySelectorAll("[data-testid=alerts-table] tbody tr")];
      return rs.length > 0 && rs.every((r) => r.getAttribute(a) === v);
    },
    [attr, value],
  );
  const narrowed = await total();
  // The demo keeps adding alerts: compare with counts taken after each reading (totals
  // only grow, so a later count bounds an earlier one).
  const param = field === "Severity" ? "severity" : "facility";
  const allNow = (await apiGet("/api/alerts?limit=1")).body?.total;
  log(`${field} = ${value}: ${all} → ${narrowed} (all alerts now ${allNow})`);
  check(narrowed > 0, `filtering on ${field} left no alert`);
  if (rows.some((r) => r[attr] !== value)) check(narrowed < allNow, `filtering on ${field} did not narrow (${narrowed} of ${allNow})`);
  // Free text: the technique id of the first row.
  const techniques = await table.locator("tbody tr td:nth-child(5) .mono").allInnerTexts();
  const technique = (techniques.find((t) => /^T\d{4}/.test(t.trim())) ?? techniques[0] ?? "").trim();
  await page.getByLabel("Search").fill(technique);
  await page.waitForURL(new RegExp(`q=${technique}`));
  await waitSettled();
  await page.waitForFunction((t) => {
    const rs = [...document.querySelectorAll("[data-testid=alerts-table] tbody tr")];
    return rs.length > 0 && rs.every((r) => r.textContent.includes(t));
  }, technique);
  const searched = await total();
  const filteredNow = (await apiGet(`/api/alerts?limit=1&${param}=${encodeURIComponent(value)}`)).body?.total;
  log(`search ${technique}: ${searched} (the ${field.toLowerCase()} filter alone now ${filteredNow})`);
  check(searched > 0 && searched <= filteredNow, `search widened the result (${searched} > ${filteredNow})`);
  await shot("03-alerts-filtered");
  await page.getByRole("button", { name: "Clear filters" }).click();
  await page.waitForFunction((n) => Number(document.querySelector("[data-testid=alert-total]")?.textContent?.match(/\d+/)?.[0]) >= n, all);
  // Only new alerts, to acknowledge one next.
  await page.getByLabel("Status", { exact: true }).selectOption("new");
  await waitSettled();
  await page.waitForFunction(() => {
    const rs = [...document.querySelectorAll("[data-testid=alerts-table] tbody tr")];
    return rs.length > 0 && rs.every((r) => r.querySelector("[data-status=new]"));
  });
  await shot("04-alerts");
});

await step("detail view shows the evidence", async () => {
  // An alert classified as an ATT&CK technique (unclassified anomalies say "unknown").
  const rowsAll = page.locator("[data-testid=alerts-table] tbody tr");
  const classified = rowsAll.filter({ hasText: /T\d{4}/ });
  const first = (await classified.count()) > 0 ? classified.first() : rowsAll.first();
  ackedAlert = await first.getAttribute("data-alert-id");
  await first.getByRole("link").click();
  await page.waitForURL(new RegExp(`/alerts/${ackedAlert}`));
  await page.getByRole("heading", { name: "Evidence" }).waitFor();
  const sources = await page.locator("[data-testid=sources-table] tbody tr").count();
  check(sources > 0, "no detector source shown");
  await page.getByRole("heading", { name: "Top contributing features" }).waitFor();
  await page.getByRole("heading", { name: "Model versions" }).waitFor();
  await page.getByRole("heading", { name: /Underlying flows/ }).waitFor();
  await page.waitForFunction(() => {
    const p = document.querySelector("#flows");
    return p && (p.querySelector("[data-testid=flows-table] tbody tr") || p.querySelector(".state-empty"));
  });
  const flows = await page.locator("[data-testid=flows-table] tbody tr").count();
  const features = await page.locator("[data-testid=features-table] tbody tr").count();
  const tech = (await page.locator("#summary dd").first().innerText()).trim();
  check(tech.length > 0, "no technique shown");
  figures.detail_technique = tech.split(/\s/)[0];
  figures.detail_sources = sources;
  figures.detail_flows = flows;
  figures.detail_features = features;
  await shot("05-alert-detail");
});

await step("acknowledge changes the status and adds an audit entry", async () => {
  check(ackedAlert, "no alert open");
  await page.locator("#audit").waitFor();
  await page.waitForFunction(() => {
    const p = document.querySelector("#audit");
    return p && (p.querySelector("[data-testid=audit-table]") || p.querySelector(".state-empty"));
  });
  const before = await page.locator("[data-testid=audit-table] tbody tr").count();
  await page.getByRole("button", { name: "Acknowledge" }).click();
  await page.locator('[data-testid=alert-status] [data-status="acknowledged"]').waitFor();
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=audit-table] tbody tr").length > n, before);
  const top = await page.locator("[data-testid=audit-table] tbody tr").first().innerText();
  check(/PUT/.test(top) && top.includes(USER), `newest audit entry is not the acknowledgement: ${top}`);
  const r = await apiGet(`/api/alerts/${ackedAlert}`);
  check(r.body?.status === "acknowledged", `API says status ${r.body?.status}`);
  await shot("06-alert-acknowledged");
});

await step("attack graph draws nodes for detected techniques", async () => {
  // What the API reports before the page loads must all be drawn (the demo keeps detecting:
  // a technique first seen after the page fetched its graph arrives with the live updates).
  const g = await apiGet("/api/mitre/graph");
  const detected = (g.body?.nodes ?? []).filter((n) => n.detected).map((n) => n.id);
  check(detected.length > 0, "the API reports no detected technique");
  await nav("Attack graph");
  await page.getByRole("heading", { name: "Attack graph", level: 1 }).waitFor();
  await page.waitForFunction(() => Number(document.querySelector("[data-testid=attack-graph]")?.getAttribute("data-rendered-nodes") ?? 0) > 0);
  await page
    .waitForFunction(
      (want) => {
        const ids = (document.querySelector("[data-testid=attack-graph]")?.getAttribute("data-node-ids") ?? "").split(" ");
        return want.every((d) => ids.includes(d));
      },
      detected,
      { timeout: 30_000 },
    )
    .catch(() => {});
  const ids = (await page.locator("[data-testid=attack-graph]").getAttribute("data-node-ids")).split(" ");
  const missing = detected.filter((d) => !ids.includes(d));
  check(missing.length === 0, `detected techniques without a node: ${missing.join(", ")}`);
  const cells = await page.locator(".matrix-cell.detected").count();
  check(cells > 0, "no matrix cell is shaded as detected");
  figures.graph_nodes = ids.length;
  figures.graph_detected = detected.length;
  await page.locator(`.matrix-cell[data-technique="${detected[0]}"]`).first().click();
  await page.locator("[data-testid=technique-panel]").getByRole("heading", { name: new RegExp(detected[0]) }).waitFor();
  await page.locator("[data-testid=technique-panel]").getByRole("heading", { name: "Mitigations" }).waitFor();
  await shot("07-attack-graph");
});

await step("predictions page", async () => {
  await nav("Predictions");
  await page.getByRole("heading", { name: "Predictions", level: 1 }).waitFor();
  await page.waitForFunction(() => document.querySelector("[data-testid=predictions-table]") || document.querySelector("#list .state-empty"));
  await page.waitForFunction(() => !document.querySelector("#precision .state-loading"));
  await shot("08-predictions");
});

await step("federation page shows a completed round with its ε", async () => {
  await nav("Federation");
  await page.getByRole("heading", { name: "Federation", level: 1 }).waitFor();
  await page.waitForFunction(() => !document.querySelector("#rounds .state-loading"));
  await shot("09-federation");
  log(`waiting up to ${FL_TIMEOUT / 1000} s for a completed round with ε`);
  await page.waitForFunction(
    () =>
      [...document.querySelectorAll('[data-testid=rounds-table] tr[data-status="completed"]')].some((r) => {
        const e = r.querySelector("[data-testid=round-epsilon]")?.textContent?.trim();
        return e && e !== "—";
      }),
    null,
    { timeout: FL_TIMEOUT, polling: 1000 },
  );
  await page.locator("[data-testid=ledger-table] tbody tr").first().waitFor();
  await shot("09-federation");
});

await step("federation page shows the strategy and DP settings", async () => {
  const r = await apiGet("/api/fl/privacy-metrics");
  check(r.status === 200, `/api/fl/privacy-metrics answered ${r.status}`);
  const f = r.body.federation;
  check(f && f.strategy, "the API reports no federation configuration");
  await page.waitForFunction(
    (want) => document.querySelector("[data-testid=fl-strategy]")?.getAttribute("data-strategy") === want,
    f.strategy,
    { timeout: 30_000, polling: 250 },
  );
  const shown = (await page.locator("[data-testid=fl-strategy]").textContent())?.trim() ?? "";
  const dp = (await page.locator("[data-testid=fl-dp]").textContent())?.trim() ?? "";
  check(shown.length > 0, "the strategy is empty");
  check(f.dp ? dp.includes(f.dp.mode) : dp === "off", `DP shown as "${dp}" for ${JSON.stringify(f.dp)}`);
  figures.fl_strategy = shown;
  figures.fl_dp = dp;
  log(`strategy: ${shown}; DP: ${dp}`);
});

await step("heap stays bounded on the overview", async () => {
  await nav("Overview");
  await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Performance.enable");
  const heap = async () => {
    await cdp.send("HeapProfiler.collectGarbage").catch(() => undefined);
    const { metrics } = await cdp.send("Performance.getMetrics");
    const v = metrics.find((m) => m.name === "JSHeapUsedSize")?.value ?? NaN;
    return Math.round((v / 1048576) * 10) / 10;
  };
  // Samples at ten even steps: a bounded page levels off, a leak keeps climbing.
  const samples = [await heap()];
  for (let i = 1; i <= 10; i++) {
    await page.waitForTimeout((SOAK_S * 1000) / 10);
    samples.push(await heap());
  }
  figures.heap_used_start_mb = samples[0];
  figures.heap_used_end_mb = samples[samples.length - 1];
  figures.heap_used_max_mb = Math.max(...samples);
  figures.heap_samples_mb = samples;
  figures.heap_soak_s = SOAK_S;
  check(
    (await page.locator('[data-connection="open"]').count()) === 1,
    "the live connection is not open after the soak",
  );
  const msgs = await page.evaluate(() => document.querySelectorAll("[data-testid=live-feed] [data-alert-id]").length);
  figures.feed_rendered = msgs;
  check(msgs <= 100, `the live feed renders ${msgs} entries (bounded to 100)`);
  await shot("10-overview-after-soak");
});

if (env.E2E_VIEWER_USER && env.E2E_VIEWER_PASSWORD) {
  await step("a viewer sees no actions", async () => {
    const vctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, colorScheme: "dark" });
    const v = await vctx.newPage();
    v.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push({ step: currentStep, url: v.url(), text: m.text() });
    });
    v.on("pageerror", (e) => consoleErrors.push({ step: currentStep, url: v.url(), text: `uncaught: ${e.message}` }));
    await v.goto(`${BASE}/alerts`);
    await v.getByLabel("User name").fill(env.E2E_VIEWER_USER);
    await v.getByLabel("Password").fill(env.E2E_VIEWER_PASSWORD);
    await v.getByRole("button", { name: "Sign in" }).click();
    await v.locator("[data-testid=alerts-table] tbody tr a").first().click();
    await v.getByRole("heading", { name: "Evidence" }).waitFor();
    check((await v.getByRole("button", { name: "Acknowledge" }).count()) === 0, "a viewer is offered Acknowledge");
    await v.getByText("The audit trail is shown to analysts and admins.").waitFor();
    await v.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Federation", exact: true }).click();
    await v.getByRole("heading", { name: "Federation", level: 1 }).waitFor();
    check((await v.getByRole("button", { name: "Trigger a round" }).count()) === 0, "a viewer is offered Trigger a round");
    await v.screenshot({ path: resolve(SHOTS, "11-viewer-federation.png"), fullPage: true });
    await vctx.close();
  });
}

await browser.close();

const failed = Object.entries(steps).filter(([, v]) => v !== "ok");
if (consoleErrors.length) {
  for (const e of consoleErrors) log(`console error during "${e.step}" on ${e.url}: ${e.text}`);
}
const ok = failed.length === 0 && consoleErrors.length === 0;
if (!ok) {
  console.error(
    `e2e FAILED: ${failed.map(([k, v]) => `${k} (${v})`).join("; ") || "all steps passed"}${consoleErrors.length ? `; ${consoleErrors.length} console error(s)` : ""}`,
  );
}
console.log(
  JSON.stringify({
    ok,
    steps,
    console_errors: consoleErrors.map((e) => `${e.step}: ${e.text}`),
    screenshots: SHOTS,
    ...figures,
    duration_s: Math.round((Date.now() - started) / 100) / 10,
  }),
);
process.exit(ok ? 0 : 1);
