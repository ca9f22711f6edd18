// Debian's Chromium (headless, playwright-core) with a page of framegate's origin that has the
// WHEP test client (whep-client.js) loaded: what every WHEP script starts with.
import { launchChromium } from "./chromium.mjs";
import { fileURLToPath } from "node:url";

/** Launches Chromium and opens `base`'s /healthz with whepConnect(); returns { browser, page }. */
export async function whepPage(base) {
  const browser = await launchChromium([
    "--autoplay-policy=no-user-gesture-required",
    // Host candidates as addresses, not mDNS names, so that framegate's ICE can reach them.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
  ]);
  const page = await browser.newPage();
  await page.goto(`${base}/healthz`);
  await page.addScriptTag({ path: fileURLToPath(new URL("./whep-client.js", import.meta.url)) });
  return { browser, page };
}
