// Drives Debian's Chromium (headless, playwright-core) as WHEP viewers of a framegate stream:
// each viewer posts its offer, plays the answer's
// video and counts decoded frames with requestVideoFrameCallback. Prints one JSON line.
//
// usage: node whep.mjs BASE_URL STREAM_ID VIEWERS
//   WHEP_ICE (environment): the viewers' RTCPeerConnection configuration as JSON, e.g. TURN
//   servers with "iceTransportPolicy": "relay".
import { whepPage } from "./whep-page.mjs";

const [base, stream, count] = process.argv.slice(2);
const { browser, page } = await whepPage(base);
try {
  const ice = JSON.parse(process.env.WHEP_ICE || "{}");
  const result = await page.evaluate(async ({ base, stream, count, ice }) => {
    async function viewer() {
      const video = document.createElement("video");
      video.muted = true;
      video.autoplay = true;
      document.body.appendChild(video);
      const { pc, res, answer, t0 } = await whepConnect(base, stream, video, ice);
      if (res.status !== 201) return { status: res.status, error: answer };
      const location = res.headers.get("Location");
      const frames = await new Promise((done) => {
        let n = 0, first = null;
        const tick = () => {
          n += 1;
          if (first === null) first = performance.now() - t0;
          if (n >= 30) done({ n, first }); else video.requestVideoFrameCallback(tick);
        };
        video.requestVideoFrameCallback(tick);
        setTimeout(() => done({ n, first }), 20000);
      });
      // The candidates framegate offered, and the types of the pair in use.
      const candidates = (answer.match(/a=candidate:[^\r\n]+/g) || []).map((c) => {
        const f = c.split(" ");
        return { transport: f[2], address: f[4], port: Number(f[5]), type: f[7] };
      });
      const stats = [...(await pc.getStats()).values()];
      // The pair in use: the transport's selected pair (the nominated flag comes later).
      const transport = stats.find((s) => s.type === "transport" && s.selectedCandidatePairId);
      const pair = transport ? stats.find((s) => s.id === transport.selectedCandidatePairId)
        : stats.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
      const byId = (id) => stats.find((s) => s.id === id);
      const path = pair ? { local: byId(pair.localCandidateId)?.candidateType,
                            remote: byId(pair.remoteCandidateId)?.candidateType } : null;
      return { status: res.status, location, frames: frames.n, firstFrameMs: Math.round(frames.first),
               width: video.videoWidth, height: video.videoHeight, state: pc.connectionState,
               candidates, path, pc };
    }
    const viewers = await Promise.all(Array.from({ length: Number(count) }, viewer));
    window.viewers = viewers;
    return viewers.map(({ pc, ...v }) => v);
  }, { base, stream, count, ice });
  // The sessions as framegate sees them while they play.
  const during = await (await fetch(`${base}/api/streams/${stream}/whep`)).json();
  // The first viewer leaves with DELETE; the second just closes its connection (vanishes).
  const deleted = await page.evaluate(async (base) => {
    const v = window.viewers[0];
    const res = await fetch(`${base}${v.location}`, { method: "DELETE" });
    v.pc.close();
    if (window.viewers[1]) window.viewers[1].pc.close();
    return res.status;
  }, base);
  console.log(JSON.stringify({ viewers: result, during, deleted }));
} finally {
  await browser.close();
}
