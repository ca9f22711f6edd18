// Drives Debian's Chromium (headless, through playwright-core) against the dashboard of one node
// of a cluster: the wall shows a live picture for every camera of the cluster, those another
// node runs included (their pictures come from that node), and the large view plays one of
// those over WebRTC. Prints one JSON line.
//
// usage: node cluster-wall.mjs URL EXPECTED_TILES REMOTE_ID
import { launchChromium, QUIET } from "./chromium.mjs";

const [url, expected, remote] = process.argv.slice(2);
const browser = await launchChromium([...QUIET]);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const consoleLog = [];
  page.on("console", (m) => consoleLog.push(m.text()));
  const failed = (e) => { throw new Error(`${e.message}; page console: ${JSON.stringify(consoleLog)}`); };
  await page.goto(url);
  await page.waitForFunction(
    (n) => Object.keys(window.framegateStats.firstFrameMs).length >= n, Number(expected), { timeout: 30000 })
    .catch(failed);
  await page.click(`.tile[data-id="${remote}"]`);
  await page.waitForFunction(() => window.framegateStats.live.transport === "webrtc", null, { timeout: 20000 })
    .catch(failed);
  const seen = await page.evaluate(() => ({
    tiles: Object.keys(window.framegateStats.firstFrameMs).sort(),
    transport: window.framegateStats.live.transport,
    label: document.querySelector("#big-label").textContent,
  }));
  console.log(JSON.stringify({ ...seen, errors }));
} finally {
  await browser.close();
}
