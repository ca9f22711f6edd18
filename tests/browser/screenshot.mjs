// The README's picture of the dashboard: opens it in Debian's headless Chromium, selects a
// camera, waits until the large view plays live video, and saves a full-page screenshot.
//
// usage: node screenshot.mjs URL STREAM_ID OUT.png   (e.g. against `framegate run`, the demo:
//        node tests/browser/screenshot.mjs http://127.0.0.1:8080/ demo-people docs/img/dashboard.png)
import { launchChromium } from "./chromium.mjs";

const [url, stream, out] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(url);
  await page.click(`.tile[data-id="${stream}"]`);
  await page.waitForFunction(() => window.framegateStats.live.latencyMs !== null, null, { timeout: 30000 });
  // Let the events panel fill and the boxes move on.
  await page.waitForFunction(() => document.querySelectorAll("#event-table tbody tr").length >= 3, null, { timeout: 30000 });
  await page.screenshot({ path: out, fullPage: true });
  console.log(JSON.stringify({ label: await page.textContent("#big-label") }));
} finally {
  await browser.close();
}
