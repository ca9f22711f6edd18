// An attacker's page in Debian's Chromium (headless, playwright-core): from its own origin it
// tries what a malicious site would against a framegate on this machine: a no-cors POST that
// adds a stream, a WebSocket of pictures, a WHEP offer. Prints one JSON line with what
// happened to each (framegate must refuse them; the test checks its side too).
//
// usage: node cross-origin.mjs PAGE_URL FRAMEGATE_URL
import { launchChromium } from "./chromium.mjs";

const [pageUrl, target] = process.argv.slice(2);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  await page.goto(pageUrl);
  const result = await page.evaluate(async (target) => {
    const out = {};
    // A "simple" request needs no preflight: the browser sends it; only framegate can refuse.
    try {
      await fetch(`${target}/api/streams`, {
        method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ id: "evil", source: "test://ball" }),
      });
      out.post = "sent";
    } catch (e) {
      out.post = "refused";
    }
    out.websocket = await new Promise((done) => {
      const ws = new WebSocket(`${target.replace("http", "ws")}/streams/cam/ws`);
      ws.onmessage = () => { ws.close(); done("pictures"); };
      ws.onerror = () => done("refused");
      ws.onclose = () => done("refused");
      setTimeout(() => done("timeout"), 10000);
    });
    try {
      const pc = new RTCPeerConnection();
      pc.addTransceiver("video", { direction: "recvonly" });
      await pc.setLocalDescription(await pc.createOffer());
      const res = await fetch(`${target}/streams/cam/whep`, {
        method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
      });
      out.whep = `answered ${res.status}`;
    } catch (e) {
      out.whep = "refused";
    }
    return out;
  }, target);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
