// Holds one WHEP viewer per stream in Debian's Chromium (headless, playwright-core) for a while,
// with or without audio in their offers (the audio benchmark's viewers). Prints one JSON line
// with the video frames each decoded.
//
// usage: node whep-hold.mjs BASE_URL ID1,ID2,... SECONDS AUDIO(0|1)
import { whepPage } from "./whep-page.mjs";

const [base, ids, seconds, audio] = process.argv.slice(2);
const { browser, page } = await whepPage(base);
try {
  const result = await page.evaluate(async ({ base, ids, seconds, audio }) => {
    const one = async (id) => {
      const video = document.createElement("video");
      video.muted = true;
      video.autoplay = true;
      document.body.appendChild(video);
      const { res } = await whepConnect(base, id, video, {}, audio);
      let frames = 0;
      const tick = () => { frames += 1; video.requestVideoFrameCallback(tick); };
      video.requestVideoFrameCallback(tick);
      await new Promise((done) => setTimeout(done, seconds * 1000));
      return { id, status: res.status, frames };
    };
    return Promise.all(ids.map(one));
  }, { base, ids: ids.split(","), seconds: Number(seconds), audio: audio === "1" });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}
