// report_page - open an HTML report in headless Chromium (puppeteer-core) and judge it
// SPDX-License-Identifier: MPL-2.0
//
// For the reporter's integration test: loads the file, waits for the load
// event, and prints one JSON line: {images, broken: [src...], console: [...],
// errors: [...], title}. An image is broken when it did not decode
// (complete with naturalWidth 0). Console messages of type "error" and
// uncaught page errors are listed. A full-page screenshot is written to
// the given path. Exit 0 when the page was judged (the test decides), 2
// when Chromium could not be driven.
// Usage: node report_page.mjs FILE.html SHOT.png [CHROMIUM]
import puppeteer from "puppeteer-core";
import { pathToFileURL } from "node:url";

const [file, shot, exe = "/usr/bin/chromium"] = process.argv.slice(2);
let browser;
try {
    browser = await puppeteer.launch({
        executablePath: exe,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-dev-shm-usage"],
    });
    const page = await browser.newPage();
    const consoleErrors = [];
    const pageErrors = [];
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    page.on("requestfailed", (r) => consoleErrors.push(`request failed: ${r.url().slice(0, 80)}`));
    await page.setViewport({ width: 800, height: 1200 });
    await page.goto(pathToFileURL(file).href, { waitUntil: "load", timeout: 30000 });
    const images = await page.$$eval("img", (imgs) =>
        imgs.map((i) => ({ src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0 })));
    await page.screenshot({ path: shot, fullPage: true });
    console.log(JSON.stringify({
        title: await page.title(),
        images: images.length,
        broken: images.filter((i) => !i.ok).map((i) => i.src),
        console: consoleErrors,
        errors: pageErrors,
    }));
    await browser.close();
} catch (e) {
    console.error(String(e));
    if (browser) await browser.close().catch(() => {});
    process.exit(2);
}
