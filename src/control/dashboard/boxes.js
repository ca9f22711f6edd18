// framegate dashboard: detection boxes drawn over the live WebRTC video by the page, not burned
// into it, each on the frame it was found in.
//
// framegate sends each detector result with the RTP timestamp its frame went out with in this
// viewer's session (GET <session>/boxes, Server-Sent Events); each frame the browser decodes
// tells its own (requestVideoFrameCallback's rtpTimestamp). Results come after their frame
// (the detector takes its time), so while boxes are on, the page shows the video itself on a
// canvas, every frame held back by the recent results' delay (adapted, never over a second):
// the boxes land on the frame they were found in, and the video runs that much later. Without
// rtpTimestamp (other browsers) there are no boxes and the video shows as it comes.
"use strict";

const BOXES = {
  keep: 64,           // results remembered
  holdTicks: 90000,   // a result is drawn on later frames for at most 1 s (90 kHz)
  maxDelayMs: 1000,   // the most a frame is held back for its boxes
  lags: 25,           // recent results the hold-back is chosen from
  queue: 40,          // frames held at most (a frame over it is shown at once)
};

// Colours of tracks, by id (as the overlay burns them in): each object keeps its colour.
const TRACK_COLORS = ["#00e640", "#ffc800", "#00c8ff", "#ff5ac8", "#ff7828", "#aa82ff"];

/** a - b on the 32-bit RTP clock, as a signed number of ticks. */
function rtpDiff(a, b) {
  return ((a - b) | 0);
}

class BoxOverlay {
  /** `url`: the session's boxes; `headers`: the request's. */
  constructor(video, canvas, url, headers) {
    this.video = video;
    this.canvas = canvas;
    this.url = url;
    this.headers = headers;
    this.abort = new AbortController();
    this.results = [];        // newest last: { rtp, width, height, boxes, at }
    this.frames = [];         // held frames, oldest first: { rtp, bitmap, at }
    this.drawn = new Map();   // rtp -> when its frame was drawn (recent frames)
    this.lags = [];
    this.delayMs = 0;
    this.stats = { results: 0, onTime: 0, late: 0, unmatched: 0, framesDrawn: 0, withBoxes: 0, withTracks: 0, exact: 0, delayMs: 0 };
    this.closed = false;
  }

  start() {
    if (!this.video.requestVideoFrameCallback) return;
    this.read().catch((e) => { if (!this.closed) console.info(`boxes: ${e.message}`); });
    const frame = (now, meta) => {
      if (this.closed) return;
      if (meta.rtpTimestamp === undefined) { console.info("boxes: no rtpTimestamp in this browser"); return; }
      this.hold(meta.rtpTimestamp);
      this.video.requestVideoFrameCallback(frame);
    };
    this.video.requestVideoFrameCallback(frame);
    const tick = () => {
      if (this.closed) return;
      this.show();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  async read() {
    const res = await fetch(this.url, { headers: this.headers, signal: this.abort.signal });
    if (!res.ok) throw new Error(`boxes answered ${res.status}`);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += value;
      let end;
      while ((end = text.indexOf("\n\n")) >= 0) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("");
        if (data) this.onResult(JSON.parse(data));
      }
      if (text.length > 1 << 20) throw new Error("an event larger than 1 MiB");
    }
  }

  onResult(r) {
    r.at = performance.now();
    this.stats.results++;
    const drawnAt = this.drawn.get(r.rtp);
    if (drawnAt !== undefined) {
      // Its frame was shown before the boxes came: hold frames back by about that much more.
      this.stats.late++;
      r.counted = true;
      this.lags.push(this.delayMs + (r.at - drawnAt) + 20);
      if (this.lags.length > BOXES.lags) this.lags.shift();
      const sorted = [...this.lags].sort((a, b) => a - b);
      const p90 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))];
      this.delayMs = Math.min(BOXES.maxDelayMs, Math.max(this.delayMs, Math.round(p90)));
      this.stats.delayMs = this.delayMs;
    } else if (this.frames.some((f) => f.rtp === r.rtp)) {
      this.stats.onTime++;
      r.counted = true;
    }
    this.results.push(r);
    if (this.results.length > BOXES.keep && !this.results.shift().counted) this.stats.unmatched++;
    this.show();
  }

  /** Keeps the frame the video shows now, to show it with its boxes. */
  hold(rtp) {
    const at = performance.now();
    createImageBitmap(this.video).then((bitmap) => {
      if (this.closed) { bitmap.close(); return; }
      this.frames.push({ rtp, bitmap, at });
      this.show();
    }).catch(() => {});
  }

  /** Shows the newest held frame that is due: all are held back by the same delay, so that
   * the video keeps its cadence. */
  show() {
    const now = performance.now();
    let due = null;
    while (this.frames.length) {
      const f = this.frames[0];
      if (!(now - f.at >= this.delayMs || this.frames.length > BOXES.queue)) break;
      this.frames.shift();
      if (due) due.bitmap.close();
      due = f;
    }
    if (due) this.draw(due);
  }

  draw(f) {
    // The newest result found in this frame or before it, within the hold.
    let best = null;
    for (const r of this.results) {
      const d = rtpDiff(f.rtp, r.rtp);
      if (d >= 0 && d <= BOXES.holdTicks && (!best || d < rtpDiff(f.rtp, best.rtp))) best = r;
    }
    const c = this.canvas;
    const w = c.clientWidth, h = c.clientHeight;
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext("2d");
    g.fillStyle = "#000";
    g.fillRect(0, 0, w, h);
    // Contained in the element, as the video would be.
    const scale = Math.min(w / f.bitmap.width, h / f.bitmap.height);
    const fw = f.bitmap.width * scale, fh = f.bitmap.height * scale;
    const x0 = (w - fw) / 2, y0 = (h - fh) / 2;
    g.drawImage(f.bitmap, x0, y0, fw, fh);
    f.bitmap.close();
    this.drawn.set(f.rtp, performance.now());
    if (this.drawn.size > 256) this.drawn.delete(this.drawn.keys().next().value);
    this.stats.framesDrawn++;
    if (!best) return;
    if (best.rtp === f.rtp) this.stats.exact++;
    if (best.boxes.length) this.stats.withBoxes++;
    const tracks = best.tracks || [];
    if (tracks.length) this.stats.withTracks++;
    const sx = fw / best.width, sy = fh / best.height;
    g.lineWidth = 2;
    g.font = "13px sans-serif";
    for (const b of best.boxes) {
      const x = x0 + b.rect.x * sx, y = y0 + b.rect.y * sy;
      g.strokeStyle = "#3f3";
      g.strokeRect(x, y, b.rect.w * sx, b.rect.h * sy);
      const label = `${b.label} ${Math.round(b.score * 100)}%`;
      g.fillStyle = "rgba(0,0,0,.6)";
      g.fillRect(x, y - 16, g.measureText(label).width + 6, 16);
      g.fillStyle = "#3f3";
      g.fillText(label, x + 3, y - 4);
    }
    // A tracker's results: each object in its own colour, with its id and its path.
    for (const t of tracks) {
      const color = TRACK_COLORS[t.id % TRACK_COLORS.length];
      g.strokeStyle = color;
      if (t.trail && t.trail.length > 1) {
        g.beginPath();
        t.trail.forEach(([px, py], i) => {
          const tx = x0 + px * sx, ty = y0 + py * sy;
          if (i === 0) g.moveTo(tx, ty); else g.lineTo(tx, ty);
        });
        g.stroke();
      }
      const x = x0 + t.rect.x * sx, y = y0 + t.rect.y * sy;
      g.strokeRect(x, y, t.rect.w * sx, t.rect.h * sy);
      const label = `#${t.id} ${t.label}`;
      g.fillStyle = "rgba(0,0,0,.6)";
      g.fillRect(x, y - 16, g.measureText(label).width + 6, 16);
      g.fillStyle = color;
      g.fillText(label, x + 3, y - 4);
    }
  }

  stop() {
    this.closed = true;
    this.abort.abort();
    for (const f of this.frames) f.bitmap.close();
    this.frames = [];
    const g = this.canvas.getContext("2d");
    g.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }
}
window.BoxOverlay = BoxOverlay;
