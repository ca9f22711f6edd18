// The dashboard's sound: opens the dashboard in Debian's Chromium (headless, playwright-core),
// selects a camera, waits for its live video over TRANSPORT (webrtc or llhls), and checks that
// it starts muted with a sound button shown, and that a click on the button turns the sound
// on. With LL-HLS it also reports the audio bytes the media element decoded before and after.
// Prints one JSON line.
//
// usage: node dashboard-sound.mjs URL STREAM_ID [TRANSPORT]
import { launchChromium } from "./chromium.mjs";

const [url, id, transport = "webrtc"] = process.argv.slice(2);
const browser = await launchChromium([
  "--autoplay-policy=user-gesture-required",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
]);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(transport === "webrtc" ? url : `${url}?live=${transport}`);
  await page.waitForSelector(`.tile[data-id="${id}"]`, { timeout: 30000 });
  await page.click(`.tile[data-id="${id}"]`);
  await page.waitForFunction((t) => window.framegateStats.live.transport === t, transport, { timeout: 20000 });
  await page.waitForSelector("#sound:not([hidden])", { timeout: 10000 });
  // Playing: the picture moves.
  await page.waitForFunction(() => document.querySelector("#big-video").currentTime > 1, null, { timeout: 20000 });
  const state = () => page.evaluate(() => {
    const v = document.querySelector("#big-video");
    const tracks = v.srcObject ? v.srcObject.getAudioTracks() : [];
    return { muted: v.muted, paused: v.paused, audioTracks: tracks.length,
             trackLive: tracks.length > 0 && tracks[0].readyState === "live",
             audioBytes: v.webkitAudioDecodedByteCount ?? null,
             button: document.querySelector("#sound").textContent };
  });
  const before = await state();
  await page.click("#sound");
  // Two more seconds of play with the sound on.
  await page.waitForFunction((t) => document.querySelector("#big-video").currentTime > t + 2,
                             (await page.evaluate(() => document.querySelector("#big-video").currentTime)),
                             { timeout: 20000 });
  const after = await state();
  console.log(JSON.stringify({ before, after, errors }));
} finally {
  await browser.close();
}
