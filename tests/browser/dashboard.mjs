// Drives Debian's Chromium (headless, through playwright-core) against framegate's dashboard:
// waits for every tile's first picture, checks that the pictures move, clicks through the
// tiles, checks the events panel and the viewer list, and prints what the page measured (window.framegateStats) as one JSON line.
//
// usage: node dashboard.mjs URL EXPECTED_TILES SWITCHES SCREENSHOT.png [MEASURE_SECONDS]
//   FRAMEGATE_TOKEN (environment): the API token the page is to use.
// With MEASURE_SECONDS, it then watches the last camera that long and reports bandwidth per
// viewer (a tile, the large view) and the large view's picture latency.
import { launchChromium, QUIET } from "./chromium.mjs";
import { bigLit, countVideoFrames, tileSums } from "./page-checks.mjs";

const [url, expected, switchCount, screenshot, measure] = process.argv.slice(2);
const tiles = Number(expected);
const browser = await launchChromium([...QUIET]);
try {
  // With FRAMEGATE_TOKEN, pages start with the API token in their storage (as after the
  // "API token" prompt), so that they work against a framegate whose reads are closed.
  const newPage = async () => {
    const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    if (process.env.FRAMEGATE_TOKEN) {
      await p.addInitScript((t) => localStorage.setItem("framegate-token", t), process.env.FRAMEGATE_TOKEN);
    }
    return p;
  };
  const page = await newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const consoleLog = [];
  page.on("console", (m) => consoleLog.push(m.text()));
  await page.goto(url);
  await page.waitForFunction(
    (n) => Object.keys(window.framegateStats.firstFrameMs).length >= n, tiles, { timeout: 30000 });

  // Every tile's picture changes (live video, not a still).
  const first = await page.evaluate(tileSums);
  await page.waitForFunction(tileSums, first, { timeout: 20000 });

  // Click through the tiles; right after each click the large view must already show a picture.
  const ids = await page.evaluate(() => [...document.querySelectorAll(".tile")].map((t) => t.dataset.id));
  let blankAfterClick = 0;
  for (let i = 0; i < Number(switchCount); i++) {
    const id = ids[i % ids.length];
    const before = await page.evaluate(() => window.framegateStats.switches.length);
    await page.click(`.tile[data-id="${id}"]`);
    if ((await page.evaluate(bigLit)) === 0) blankAfterClick++;
    await page.waitForFunction((n) => window.framegateStats.switches.length > n, before, { timeout: 10000 });
  }
  // The events panel lists stored events (the streams going live) and filters them by stream;
  // the details list the large view's own viewer session.
  await page.selectOption("#event-filter select[name=kind]", "stream.state");
  await page.waitForFunction((n) => {
    const rows = [...document.querySelectorAll("#event-table tbody tr")];
    return rows.length >= n && rows.every((r) => r.className === "stream-state");
  }, tiles, { timeout: 20000 });
  const lastId = ids[(Number(switchCount) - 1) % ids.length];
  await page.selectOption("#event-filter select[name=stream]", lastId);
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll("#event-table tbody tr")];
    return rows.length > 0 && rows.every((r) => r.children[1].textContent === id);
  }, lastId, { timeout: 10000 });
  await page.selectOption("#event-filter select[name=stream]", "");
  await page.selectOption("#event-filter select[name=kind]", "");
  // The unfiltered list comes back from the API: until then the table still shows the
  // filtered rows. (A timeout here leaves the check of the rows to the Rust side.)
  await page.waitForFunction((n) => document.querySelectorAll("#event-table tbody tr").length >= n,
    tiles, { timeout: 10000 }).catch(() => {});
  await page.waitForFunction(() => /dashboard .*websocket/.test(document.querySelector("#details").textContent),
    null, { timeout: 10000 });
  const events = await page.evaluate(() => ({
    rows: document.querySelectorAll("#event-table tbody tr").length,
    kinds: [...new Set([...document.querySelectorAll("#event-table tbody tr")].map((r) => r.children[2].textContent))],
    error: window.framegateEvents.error,
  }));
  // The large view moves from JPEG pictures to WebRTC video once the selection stays, and
  // says so with its latency.
  await page.waitForFunction(() => window.framegateStats.live.transport === "webrtc", null, { timeout: 15000 })
    .catch((e) => { throw new Error(`${e.message}; page console: ${JSON.stringify(consoleLog)}`); });
  const videoFrames = await page.evaluate(countVideoFrames);
  await page.waitForFunction(() => window.framegateStats.live.latencyMs !== null
    && /WebRTC · ≈ \d+ ms/.test(document.querySelector("#big-label").textContent), null, { timeout: 10000 });
  const webrtc = await page.evaluate((frames) => ({
    frames, label: document.querySelector("#big-label").textContent,
    latencyMs: window.framegateStats.live.latencyMs, shownMs: window.framegateStats.videoShownMs,
  }), videoFrames);
  await page.screenshot({ path: screenshot });
  // Where WebRTC is not to be had, LL-HLS (here forced) plays instead.
  const fallback = await newPage();
  fallback.on("pageerror", (e) => errors.push(String(e)));
  await fallback.goto(`${url}?live=llhls`);
  await fallback.waitForSelector(".tile");
  await fallback.click(`.tile[data-id="${ids[0]}"]`);
  await fallback.waitForFunction(() => window.framegateStats.live.transport === "llhls", null, { timeout: 20000 });
  const llhls = {
    frames: await fallback.evaluate(countVideoFrames),
    native: await fallback.evaluate(() => document.createElement("video").canPlayType("application/vnd.apple.mpegurl")),
    hlsJs: await fallback.evaluate(() => Boolean(window.Hls)),
  };
  await fallback.close();
  let bandwidth = null;
  if (Number(measure) > 0) {
    const start = await page.evaluate(() => {
      const s = window.framegateStats;
      s.bigLatencyMs.length = 0;
      return { t: performance.now(), tiles: s.bytes.tiles, big: s.bytes.big };
    });
    await page.waitForTimeout(Number(measure) * 1000); // a measurement window, not a wait for a condition
    bandwidth = await page.evaluate((start) => {
      const s = window.framegateStats;
      const secs = (performance.now() - start.t) / 1000;
      const tiles = document.querySelectorAll(".tile").length;
      return {
        tileKbitPerViewer: Math.round(((s.bytes.tiles - start.tiles) * 8) / 1000 / secs / tiles),
        bigKbit: Math.round(((s.bytes.big - start.big) * 8) / 1000 / secs),
        seconds: secs,
      };
    }, start);
  }
  const stats = await page.evaluate(() => window.framegateStats);
  // With RELOADS=n: the page loaded again n times in the same browser (as a user reopening the
  // wall), each giving the slowest tile's first picture after the script started and after
  // navigation started.
  const reloads = [];
  for (let i = 0; i < Number(process.env.RELOADS || 0); i++) {
    await page.reload();
    await page.waitForFunction(
      (n) => Object.keys(window.framegateStats.firstFrameMs).length >= n, tiles, { timeout: 30000 });
    reloads.push(await page.evaluate(() => ({
      script: Math.max(...Object.values(window.framegateStats.firstFrameMs)),
      navigation: Math.max(...Object.values(window.framegateStats.firstFrameNavMs)),
    })));
  }
  console.log(JSON.stringify({ tiles: ids.length, blankAfterClick, errors, bandwidth, events, reloads, webrtc, llhls, ...stats }));
} finally {
  await browser.close();
}
