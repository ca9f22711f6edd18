// framegate dashboard: live video for the large view. WebRTC (WHEP) first; LL-HLS (the
// browser's own HLS, else hls.js) when WebRTC cannot play; when neither does, the JPEG
// pictures stay. The JPEG pictures show until the video's first frame, so a switch stays as
// fast as before; the video then takes over. `?live=webrtc|llhls|jpeg` forces one.
"use strict";

const LIVE = {
  delayMs: 250,        // a selection held this long gets video (rapid clicking starts none)
  timeoutMs: { webrtc: 5000, llhls: 10000 },
  names: { webrtc: "WebRTC", llhls: "LL-HLS", jpeg: "JPEG" },
};

/** The transports to try, best first. */
function liveOrder() {
  const forced = new URLSearchParams(location.search).get("live");
  if (forced === "jpeg") return [];
  const all = ["webrtc", "llhls"].filter((t) => t !== "webrtc" || "RTCPeerConnection" in window);
  return all.includes(forced) ? [forced] : all;
}

/** Resolves at the video's first shown frame, rejects after `ms`. */
function firstFrame(video, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no picture within ${ms} ms`)), ms);
    const done = () => { clearTimeout(timer); resolve(); };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(done);
    else video.addEventListener("playing", done, { once: true });
    video.play().catch(() => {}); // muted autoplay; a refusal shows as a timeout
  });
}

let hlsScript = null;
function loadHlsJs() {
  if (window.Hls) return Promise.resolve();
  hlsScript ||= new Promise((resolve, reject) => {
    const s = document.createElement("script");
    s.src = "/vendor/hls.light.min.js";
    s.onload = resolve;
    s.onerror = () => reject(new Error("hls.js did not load"));
    document.head.appendChild(s);
  });
  return hlsScript;
}

/** The tracks the answer sends. */
function receiving(pc) {
  const live = pc.getTransceivers().filter((t) => ["recvonly", "sendrecv"].includes(t.currentDirection));
  return new MediaStream(live.map((t) => t.receiver.track));
}

class LiveVideo {
  constructor(id, video, token, viewToken, onFail, audio, base) {
    this.id = id;
    this.base = base || ""; // the owner's address when another node of the cluster runs it
    this.audio = audio;    // the stream has sound: offer to receive it
    this.video = video;
    this.token = token;
    this.viewToken = viewToken;
    this.onFail = onFail;  // called when playing video stops working
    this.transport = null;
    this.closed = false;
    this.last = null;      // previous WebRTC counters, for recent averages
  }

  headers(extra) {
    return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : extra;
  }

  /** Tries each transport; resolves to the one playing, or null. */
  async start() {
    for (const t of liveOrder()) {
      if (this.closed) return null;
      try {
        await this[t]();
        await firstFrame(this.video, LIVE.timeoutMs[t]);
        if (this.closed) return null;
        this.transport = t;
        return t;
      } catch (e) {
        if (this.closed) return null; // switched away meanwhile
        console.info(`${this.id}: ${LIVE.names[t]} did not play (${e.message})`);
        await this.teardown();
      }
    }
    return null;
  }

  async webrtc() {
    const pc = (this.pc = new RTCPeerConnection());
    pc.addTransceiver("video", { direction: "recvonly" });
    // Sound too (Opus), only from a stream that has some: an audio section the answer leaves
    // inactive keeps Chromium from showing the video (webrtcbin 1.22).
    if (this.audio) pc.addTransceiver("audio", { direction: "recvonly" });
    pc.onconnectionstatechange = () => {
      if (this.transport && ["failed", "closed"].includes(pc.connectionState)) this.fail();
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((done) => {
      if (pc.iceGatheringState === "complete") return done();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
      setTimeout(done, 1000); // host candidates come at once; do not wait for slow ones
    });
    const res = await fetch(`${this.base}/streams/${encodeURIComponent(this.id)}/whep`, {
      method: "POST", headers: this.headers({ "Content-Type": "application/sdp" }), body: pc.localDescription.sdp,
    });
    const answer = await res.text();
    if (res.status !== 201) throw new Error(`WHEP answered ${res.status}: ${answer}`);
    this.session = new URL(res.headers.get("Location"), this.base || location.href).href;
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    this.video.srcObject = receiving(pc);
  }

  async llhls() {
    const url = `${this.base}/streams/${encodeURIComponent(this.id)}/llhls/index.m3u8`;
    // hls.js where Media Source Extensions are (its low-latency mode is dependable; Chromium's
    // own HLS did not play these playlists), the browser's own HLS elsewhere (older iPhones).
    const mse = "MediaSource" in window || "ManagedMediaSource" in window;
    if (!mse && this.video.canPlayType("application/vnd.apple.mpegurl")) {
      this.video.src = this.viewToken ? `${url}?vt=${encodeURIComponent(this.viewToken)}` : url;
      return;
    }
    await loadHlsJs();
    if (!window.Hls || !Hls.isSupported()) throw new Error("no HLS in this browser");
    const token = this.token;
    const hls = (this.hls = new Hls({
      lowLatencyMode: true,
      backBufferLength: 4,
      xhrSetup: token ? (xhr) => xhr.setRequestHeader("Authorization", `Bearer ${token}`) : undefined,
    }));
    hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal && this.transport) this.fail(); });
    hls.loadSource(url);
    hls.attachMedia(this.video);
  }

  /** Draws the stream's detections on `canvas`, over the WebRTC video (see boxes.js). */
  drawBoxes(canvas) {
    if (this.transport !== "webrtc" || !this.session || !window.BoxOverlay) return;
    const q = this.viewToken ? `?vt=${encodeURIComponent(this.viewToken)}` : "";
    this.boxes = new BoxOverlay(this.video, canvas, `${this.session}/boxes${q}`, this.headers({}));
    this.boxes.start();
  }

  fail() {
    if (this.closed) return;
    this.stop();
    this.onFail();
  }

  /** Milliseconds from framegate's encoder output to the screen, estimated; null: unknown. */
  async delayMs() {
    if (this.transport === "webrtc" && this.pc) {
      const stats = [...(await this.pc.getStats()).values()];
      const rtp = stats.find((s) => s.type === "inbound-rtp" && s.kind === "video");
      const pair = stats.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
      if (!rtp) return null;
      const now = { buffer: rtp.jitterBufferDelay || 0, emitted: rtp.jitterBufferEmittedCount || 0,
                    decode: rtp.totalDecodeTime || 0, decoded: rtp.framesDecoded || 0 };
      const last = this.last || { buffer: 0, emitted: 0, decode: 0, decoded: 0 };
      this.last = now;
      const buffer = now.emitted > last.emitted ? (now.buffer - last.buffer) / (now.emitted - last.emitted) : 0;
      const decode = now.decoded > last.decoded ? (now.decode - last.decode) / (now.decoded - last.decoded) : 0;
      const network = pair && pair.currentRoundTripTime ? pair.currentRoundTripTime / 2 : 0;
      return Math.round((buffer + decode + network) * 1000);
    }
    if (this.transport === "llhls") {
      // Program date-times are stamped where the encoder's output is packaged.
      const date = this.hls ? this.hls.playingDate
        : this.video.getStartDate && !isNaN(this.video.getStartDate().getTime())
          ? new Date(this.video.getStartDate().getTime() + this.video.currentTime * 1000) : null;
      if (date) return Math.round(Date.now() - date.getTime());
      return this.hls && this.hls.latency ? Math.round(this.hls.latency * 1000) : null;
    }
    return null;
  }

  async teardown() {
    if (this.boxes) { this.boxes.stop(); this.boxes = null; }
    if (this.hls) { this.hls.destroy(); this.hls = null; }
    if (this.pc) { this.pc.close(); this.pc = null; }
    if (this.session) {
      const session = this.session;
      this.session = null;
      fetch(session, { method: "DELETE", headers: this.headers({}) }).catch(() => {});
    }
    this.video.removeAttribute("src");
    this.video.srcObject = null;
    this.video.load();
  }

  stop() {
    this.closed = true;
    this.transport = null;
    return this.teardown();
  }
}
window.LiveVideo = LiveVideo;
window.LIVE = LIVE;
