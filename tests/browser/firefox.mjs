// Drives Debian's Firefox ESR (headless, through puppeteer-core over WebDriver BiDi) against
// framegate's dashboard: every tile gets live pictures, clicks switch the large view without a
// blank frame, the events panel fills, and at phone size nothing overflows sideways. Prints
// one JSON line with what the page measured (window.framegateStats).
//
// usage: node firefox.mjs URL EXPECTED_TILES SWITCHES SCREENSHOT.png
import puppeteer from "puppeteer-core";
import { bigLit, tileSums } from "./page-checks.mjs";

const [url, expected, switchCount, screenshot] = process.argv.slice(2);
const tiles = Number(expected);
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
  headless: true,
  extraPrefsFirefox: { "browser.shell.checkDefaultBrowser": false, "datareporting.policy.dataSubmissionEnabled": false },
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(
    (n) => Object.keys(window.framegateStats.firstFrameMs).length >= n, { timeout: 30000 }, tiles);

  const first = await page.evaluate(tileSums);
  await page.waitForFunction(tileSums, { timeout: 20000 }, first);

  const ids = await page.evaluate(() => [...document.querySelectorAll(".tile")].map((t) => t.dataset.id));
  let blankAfterClick = 0;
  for (let i = 0; i < Number(switchCount); i++) {
    const id = ids[i % ids.length];
    const before = await page.evaluate(() => window.framegateStats.switches.length);
    await page.click(`.tile[data-id="${id}"]`);
    if ((await page.evaluate(bigLit)) === 0) blankAfterClick++;
    await page.waitForFunction((n) => window.framegateStats.switches.length > n, { timeout: 10000 }, before);
  }
  await page.waitForFunction(() => document.querySelectorAll("#event-table tbody tr").length > 0,
    { timeout: 20000 });
  const eventRows = await page.evaluate(() => document.querySelectorAll("#event-table tbody tr").length);
  // The large view moves to live video: WebRTC, or LL-HLS where Firefox has no H.264 for WebRTC.
  const liveTransport = await page.waitForFunction(
    () => window.framegateStats.live.transport !== "jpeg" && window.framegateStats.live.transport,
    { timeout: 25000 }).then((h) => h.jsonValue()).catch(() => "jpeg");
  await page.screenshot({ path: screenshot });

  // Phone size: the wall and the large view fit the width.
  await page.setViewport({ width: 390, height: 844 });
  await page.waitForFunction(() => document.querySelector("#big").getBoundingClientRect().width <= 390,
    { timeout: 5000 });
  const phone = await page.evaluate(() => ({
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    bigWidth: Math.round(document.querySelector("#big").getBoundingClientRect().width),
    tileWidth: Math.round(document.querySelector(".tile").getBoundingClientRect().width),
  }));
  const stats = await page.evaluate(() => window.framegateStats);
  const version = await browser.version();
  console.log(JSON.stringify({ browser: version, tiles: ids.length, blankAfterClick, errors, eventRows, phone, liveTransport, ...stats }));
} finally {
  await browser.close();
}
