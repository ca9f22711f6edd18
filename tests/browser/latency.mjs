// Glass-to-glass latency of framegate's browser transports, from the capture-time stamps that
// `framegate testsrc` draws into its frames: Debian's headless Chromium plays a stream over
// WebRTC (WHEP), LL-HLS (hls.js, low-latency mode), MJPEG or the WebSocket, reads the stamp of
// every frame it shows, and compares it with the time the frame is shown. framegate's CPU and
// H.264 encoder count come from its /metrics during each phase. Prints one JSON line.
//
// usage: node latency.mjs BASE_URL STREAM_ID PHASES
//   PHASES: JSON list of {"transport": "webrtc"|"llhls"|"mjpeg"|"ws", "viewers": N, "seconds": S}
import { launchChromium } from "./chromium.mjs";
import { fileURLToPath } from "node:url";

const [base, stream, phasesJson] = process.argv.slice(2);
const phases = JSON.parse(phasesJson);
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const browser = await launchChromium([
  "--autoplay-policy=no-user-gesture-required",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
]);
const results = [];
try {
  for (const phase of phases) {
    const page = await browser.newPage();
    await page.goto(`${base}/healthz`);
    await page.addScriptTag({ path: here("./stamp.js") });
    await page.addScriptTag({ path: here("./whep-client.js") });
    if (phase.transport === "llhls") {
      await page.addScriptTag({ path: here("./node_modules/hls.js/dist/hls.min.js") });
    }
    results.push(await page.evaluate(measure, { base, stream, ...phase }));
    await page.close();
  }
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}

// Runs in the page.
async function measure({ base, stream, transport, viewers, seconds }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const wallOffset = Date.now() - performance.now();
  const samples = [];
  let measuring = false;
  const record = (v, stamp, shownAt) => {
    if (stamp === null) { v.unstamped += 1; return; }
    v.frames += 1;
    if (v.first === null) v.first = performance.now() - v.t0;
    if (measuring) samples.push(wallOffset + shownAt - stamp);
  };
  const metrics = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const num = (name) => {
      const m = text.match(new RegExp(`^${name} ([0-9.eE+-]+)$`, "m"));
      return m ? Number(m[1]) : null;
    };
    return { cpu: num("process_cpu_seconds_total"), encoders: num("framegate_h264_encoders"), at: performance.now() };
  };
  const videoElement = () => {
    const video = document.createElement("video");
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    document.body.appendChild(video);
    return video;
  };
  const onVideoFrames = (v, video) => {
    const tick = (now, meta) => {
      record(v, readStamp(video, meta.width, meta.height), meta.expectedDisplayTime);
      if (!v.stopped) video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  };

  async function webrtc(v) {
    const video = videoElement();
    const { pc, res, answer, t0 } = await whepConnect(base, stream, video);
    v.t0 = t0;
    if (res.status !== 201) throw new Error(`WHEP ${res.status}: ${answer}`);
    const location = res.headers.get("Location");
    onVideoFrames(v, video);
    v.stop = async () => {
      v.stopped = true;
      await fetch(`${base}${location}`, { method: "DELETE" });
      pc.close();
      video.remove();
    };
  }

  async function llhls(v) {
    const video = videoElement();
    const hls = new Hls({ lowLatencyMode: true, backBufferLength: 4 });
    v.hlsLatency = [];
    v.t0 = performance.now();
    hls.loadSource(`${base}/streams/${stream}/llhls/index.m3u8`);
    hls.attachMedia(video);
    // Errors hls.js recovers from are kept too (a stall shows up as one): they say what it
    // waited for when a run sees few frames.
    v.recovered = [];
    hls.on(Hls.Events.ERROR, (_, d) => {
      const what = `${d.type}: ${d.details}${d.frag ? ` (sn ${d.frag.sn}, part ${d.part ? d.part.index : "-"})` : ""}`;
      if (d.fatal) v.error = what;
      else if (v.recovered.length < 20) v.recovered.push(`${Math.round(performance.now() - v.t0)} ms ${what}`);
    });
    video.play().catch(() => {});
    onVideoFrames(v, video);
    const timer = setInterval(() => { if (measuring && hls.latency) v.hlsLatency.push(hls.latency); }, 250);
    v.stop = async () => { v.stopped = true; clearInterval(timer); hls.destroy(); video.remove(); };
  }

  async function mjpeg(v) {
    const img = document.createElement("img");
    document.body.appendChild(img);
    v.t0 = performance.now();
    img.src = `${base}/streams/${stream}/mjpeg`;
    let last = null;
    const tick = (t) => {
      if (img.naturalWidth) {
        const s = readStamp(img, img.naturalWidth, img.naturalHeight);
        if (s !== last) { record(v, s, t); last = s; }
      }
      if (!v.stopped) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    v.stop = async () => { v.stopped = true; img.src = ""; img.remove(); };
  }

  async function ws(v) {
    const socket = new WebSocket(`${base.replace(/^http/, "ws")}/streams/${stream}/ws`);
    socket.binaryType = "arraybuffer";
    v.t0 = performance.now();
    let busy = false;
    socket.onmessage = async (e) => {
      if (busy) return; // newest only, as the dashboard does
      busy = true;
      const data = new DataView(e.data);
      const len = data.getUint32(0);
      const bitmap = await createImageBitmap(new Blob([new Uint8Array(e.data, 4 + len)], { type: "image/jpeg" }));
      const s = readStamp(bitmap, bitmap.width, bitmap.height);
      requestAnimationFrame((t) => { record(v, s, t); busy = false; });
    };
    v.stop = async () => { v.stopped = true; socket.close(); };
  }

  const start = { webrtc, llhls, mjpeg, ws }[transport];
  const vs = Array.from({ length: viewers }, () => ({ first: null, frames: 0, unstamped: 0, stopped: false }));
  await Promise.all(vs.map((v) => start(v)));
  const deadline = performance.now() + 20000;
  while (vs.some((v) => v.first === null) && performance.now() < deadline) await sleep(50);
  await sleep(1000); // players settle (jitter buffers, the LL-HLS live edge)
  const m0 = await metrics();
  measuring = true;
  await sleep(seconds * 1000);
  measuring = false;
  const m1 = await metrics();
  await Promise.all(vs.map((v) => v.stop && v.stop()));
  samples.sort((a, b) => a - b);
  const pct = (p) => (samples.length ? Math.round(samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]) : null);
  const hlsLatency = vs.flatMap((v) => v.hlsLatency || []);
  return {
    transport, viewers, seconds,
    firstFrameMs: vs.map((v) => (v.first === null ? null : Math.round(v.first))),
    frames: vs.map((v) => v.frames),
    unstamped: vs.map((v) => v.unstamped),
    errors: vs.map((v) => v.error || null).filter(Boolean),
    recovered: vs.flatMap((v) => v.recovered || []),
    latencyMs: { n: samples.length, p50: pct(0.5), p95: pct(0.95), min: pct(0), max: samples.length ? Math.round(samples[samples.length - 1]) : null },
    hlsLatencyS: hlsLatency.length ? hlsLatency.reduce((a, b) => a + b, 0) / hlsLatency.length : null,
    cpuPercent: m0.cpu !== null && m1.cpu !== null ? Math.round(((m1.cpu - m0.cpu) / ((m1.at - m0.at) / 1000)) * 1000) / 10 : null,
    encoders: [m0.encoders, m1.encoders],
  };
}
