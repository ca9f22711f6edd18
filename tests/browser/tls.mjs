// Debian's Chromium (headless, playwright-core) opens framegate's dashboard over HTTPS,
// trusting only the certificate whose public key hash is given (as a browser would trust a
// certificate its user installed), and waits for a tile's first picture (over wss:). Prints one
// JSON line: the page's protocol, the tiles with a picture, and any certificate error.
//
// usage: node tls.mjs HTTPS_URL SPKI_SHA256_BASE64
import { launchChromium } from "./chromium.mjs";

const [url, spki] = process.argv.slice(2);
const browser = await launchChromium([`--ignore-certificate-errors-spki-list=${spki}`]);
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForFunction(() => Object.keys(window.framegateStats.firstFrameMs).length >= 1, null, { timeout: 20000 });
  const result = await page.evaluate(() => ({
    protocol: location.protocol,
    tiles: Object.keys(window.framegateStats.firstFrameMs).length,
  }));
  console.log(JSON.stringify({ ...result, errors }));
} finally {
  await browser.close();
}
