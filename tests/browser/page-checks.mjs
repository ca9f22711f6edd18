// What the browser scripts look at in the dashboard page, shared by the Chromium
// (playwright-core) and Firefox (puppeteer-core) drivers. Each function runs in the page.

/** A checksum per tile canvas: a changing sum means a moving picture. Given the sums of an
 * earlier call, whether every tile's sum differs from them instead. (A function, not a page
 * expression: the dashboard's Content-Security-Policy allows no `eval`.) */
export function tileSums(since) {
  const sums = [...document.querySelectorAll(".tile canvas")].map((c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let s = 0;
    for (let i = 0; i < d.length; i += 7) s = (s * 31 + d[i]) >>> 0;
    return s;
  });
  if (!since) return sums;
  return sums.length === since.length && sums.every((s, i) => s !== since[i]);
}

/** How many sampled pixels of the large view are not black (0: a blank frame). */
export function bigLit() {
  const c = document.querySelector("#big");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  for (let i = 0; i < d.length; i += 4 * 97) if (d[i] + d[i + 1] + d[i + 2] > 60) lit++;
  return lit;
}

/** Frames the large view's video shows (up to 10, within 10 s). */
export function countVideoFrames() {
  const video = document.querySelector("#big-video");
  return new Promise((done) => {
    let n = 0;
    const tick = () => { n += 1; if (n >= 10) done(n); else video.requestVideoFrameCallback(tick); };
    video.requestVideoFrameCallback(tick);
    setTimeout(() => done(n), 10000);
  });
}
