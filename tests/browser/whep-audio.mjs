// One WHEP viewer in Debian's Chromium (headless, playwright-core) that offers audio too: plays
// the answer for 2 s (start-up), then SECONDS more, and prints, as one JSON line, its inbound
// audio statistics over those SECONDS (packets, samples, concealment, codec) and the video
// frames decoded.
//
// usage: node whep-audio.mjs BASE_URL STREAM_ID SECONDS
import { whepPage } from "./whep-page.mjs";

const [base, stream, seconds] = process.argv.slice(2);
const { browser, page } = await whepPage(base);
try {
  const result = await page.evaluate(async ({ base, stream, seconds }) => {
    const video = document.createElement("video");
    video.autoplay = true;
    document.body.appendChild(video);
    const { pc, res, answer } = await whepConnect(base, stream, video, {}, true);
    if (res.status !== 201) return { status: res.status, error: answer };
    let frames = 0;
    const tick = () => { frames += 1; video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
    const sleep = (s) => new Promise((done) => setTimeout(done, s * 1000));
    const inbound = async () => {
      const stats = [...(await pc.getStats()).values()];
      const audio = stats.find((s) => s.type === "inbound-rtp" && s.kind === "audio");
      return { audio, codec: audio && stats.find((s) => s.id === audio.codecId) };
    };
    await sleep(2);
    const before = (await inbound()).audio;
    await sleep(Number(seconds));
    const { audio, codec } = await inbound();
    pc.close();
    const delta = (k) => (audio?.[k] ?? 0) - (before?.[k] ?? 0);
    return {
      status: res.status, frames, answerHasAudio: /m=audio [1-9]/.test(answer),
      audio: audio ? { packets: delta("packetsReceived"), lost: delta("packetsLost"),
                       samples: delta("totalSamplesReceived"), concealed: delta("concealedSamples"),
                       codec: codec?.mimeType } : null,
    };
  }, { base, stream, seconds });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
