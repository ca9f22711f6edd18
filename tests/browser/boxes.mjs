// Drives Debian's Chromium (headless, playwright-core) against framegate's dashboard: for each
// stream named, opens it in the large view (WebRTC), watches the detection boxes the page
// draws over the video for SECONDS, and prints one JSON line: per stream, the page's box
// counters (boxes.js) over that window and in all, and how often (of checks every 250 ms)
// the boxes' green was on the canvas.
//
// usage: node boxes.mjs URL SECONDS STREAM...
import { launchChromium, QUIET } from "./chromium.mjs";

const [url, seconds, ...ids] = process.argv.slice(2);
const browser = await launchChromium([...QUIET]);
const out = {};
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  await page.goto(url);
  for (const id of ids) {
    await page.waitForSelector(`.tile[data-id="${id}"]`, { timeout: 30000 });
    await page.click(`.tile[data-id="${id}"]`);
    await page.waitForFunction(
      (id) => window.framegateStats.live && window.framegateStats.live.transport === "webrtc" && window.framegateStats.boxes,
      id, { timeout: 30000 });
    // Boxes are drawn from the first result whose frame is shown after it came; the video is
    // held back by the detector's delay: watch after that has settled.
    await page.waitForFunction(() => window.framegateStats.boxes.onTime >= 3, null, { timeout: 30000 })
      .catch(async (e) => {
        const seen = await page.evaluate(() => window.framegateStats.boxes);
        throw new Error(`${id}: no result on time within 30 s: ${JSON.stringify(seen)}; console: ${logs.join(" | ")}`);
      });
    const start = await page.evaluate(() => ({ ...window.framegateStats.boxes }));
    // The boxes' colours on the canvas, now and then (the frames under them are the video's):
    // the detector's green, or a tracker's colours (boxes.js TRACK_COLORS).
    let inked = 0;
    const until = Date.now() + Number(seconds) * 1000;
    while (Date.now() < until) {
      const green = await page.evaluate(() => {
        const c = document.querySelector("#big-boxes");
        const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        const inks = [[51, 255, 51], [0, 230, 64], [255, 200, 0], [0, 200, 255], [255, 90, 200], [255, 120, 40], [170, 130, 255]];
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (inks.some(([r, g, b]) => d[i] === r && d[i + 1] === g && d[i + 2] === b)) n++;
        }
        return n;
      });
      if (green > 50) inked++;
      await new Promise((r) => setTimeout(r, 250));
    }
    const end = await page.evaluate(() => ({ ...window.framegateStats.boxes }));
    const delta = Object.fromEntries(Object.keys(end).map((k) => [k, end[k] - (start[k] || 0)]));
    delta.delayMs = end.delayMs;
    out[id] = { window: delta, total: end, inkedChecks: inked };
  }
  out.errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
