// telemetry_status - the status page in headless Chromium (Debian's chromium, puppeteer-core)
// SPDX-License-Identifier: MPL-2.0
//
// Usage: node telemetry_status.mjs GATEWAY_URL SCREENSHOT.png
// Loads GATEWAY_URL/status without a credential and fails (exit 1) on a
// console error, a page error or a failed resource; waits until it has
// rendered, then compares what it shows with GATEWAY_URL/status.json
// fetched at the same moment by the page (every service with its replica
// count, every SLO's budget, the alert rows), and saves a full-page
// screenshot.
import puppeteer from "puppeteer-core";

const [gw, shot] = process.argv.slice(2);
const problems = [];
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (q) => problems.push(`failed: ${q.url()} ${q.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`status ${r.status()}: ${r.url()}`); });
  // The status JSON the page renders: captured from its own fetch.
  let shown = null;
  page.on("response", async (r) => {
    if (r.url().endsWith("/status.json") && r.status() === 200) shown = await r.json();
  });
  const res = await page.goto(`${gw}/status`, { waitUntil: "networkidle0", timeout: 20000 });
  if (res.status() !== 200) problems.push(`GET /status answered ${res.status()}`);
  await page.waitForFunction(() => document.body.dataset.loaded, { timeout: 15000 });
  const loaded = await page.evaluate(() => Number(document.body.dataset.loaded));
  if (!shown || shown.t !== loaded) {
    // A refresh raced the capture: take the page's own document again.
    shown = await page.evaluate(async () => (await fetch("/status.json")).json());
    await page.evaluate((s) => render(s), shown);
  }
  const page_view = await page.evaluate(() => ({
    services: [...document.querySelectorAll("[data-service]")].map((c) => ({
      service: c.dataset.service,
      replicas: c.querySelector("[data-field=replicas]").textContent,
      rate: c.querySelector("[data-field=rate]").textContent,
      p99: c.querySelector("[data-field=p99]").textContent,
    })),
    slos: [...document.querySelectorAll("[data-slo]")].map((c) => ({
      name: c.dataset.slo, budget: c.querySelector("[data-field=budget]").textContent,
    })),
    alerts: document.querySelectorAll("[data-alert]").length,
    overall: document.getElementById("overall").textContent,
  }));
  const want = (a, b, what) => { if (a !== b) problems.push(`${what}: page ${a} != api ${b}`); };
  want(page_view.services.length, shown.services.length, "services");
  for (const s of shown.services) {
    const p = page_view.services.find((x) => x.service === s.service);
    if (!p) { problems.push(`service ${s.service} missing`); continue; }
    want(parseInt(p.replicas, 10), s.replicas, `${s.service} replicas`);
    want(p.rate, s.rate_per_s.toFixed(2), `${s.service} rate`);
    want(p.p99, s.p99_ms.toFixed(1), `${s.service} p99`);
  }
  want(page_view.slos.length, shown.slos.length, "slos");
  for (const s of shown.slos) {
    const p = page_view.slos.find((x) => x.name === s.name);
    if (!p) { problems.push(`slo ${s.name} missing`); continue; }
    want(p.budget, (s.budget_remaining * 100).toFixed(1) + "% left", `${s.name} budget`);
  }
  want(page_view.alerts, shown.alerts.length, "alerts");
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ services: page_view.services.length, slos: page_view.slos.length,
                               overall: page_view.overall }));
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
