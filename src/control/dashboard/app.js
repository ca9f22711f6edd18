// framegate dashboard: a camera wall of live tiles and a large view with instant switching.
// Pictures come over WebSockets (/streams/{id}/ws), one JPEG per message with a JSON header;
// the large view then moves to live video (WebRTC, else LL-HLS: live.js);
// state, details and actions come from the REST API. Measurements are kept in
// window.framegateStats for users and tests.
"use strict";

const TILE = { width: 320, fps: 5, quality: 60, viewer: "dashboard" };
const BIG = { quality: 80, viewer: "dashboard" };
const t0 = performance.now();
const stats = (window.framegateStats = {
  firstFrameMs: {},   // stream id -> ms from the page's script start to its first tile picture
  firstFrameNavMs: {}, // stream id -> the same, from navigation start (includes loading the page)
  switches: [],       // ms from a click to the new camera's first full-size picture
  latencyMs: {},      // stream id -> age of the newest picture when it was drawn
  bigLatencyMs: [],   // ages of the large view's pictures when drawn (the newest 1000)
  bytes: { tiles: 0, big: 0 },  // bytes received by the tile sockets and the large view's
  bigSince: 0,        // performance.now() when the current large view was opened
  live: { transport: "jpeg", latencyMs: null },  // the large view's transport and its latency
  videoShownMs: [],   // ms from a click to the live video's first frame (see live.js)
  marks: { script: Math.round(t0), api: null, wsOpen: {}, firstMessage: {} },  // ms since navigation
});

let token = localStorage.getItem("framegate-token") || "";
// A short-lived viewer token for every stream (GET /api/view-token), for the URLs that cannot
// carry the API token in a header (WebSockets, pictures, native HLS). The API token itself never
// goes into a URL.
let view = { token: "", renewAt: 0 };

async function ensureViewToken() {
  if (!token) { view = { token: "", renewAt: 0 }; return; }
  if (view.token && Date.now() < view.renewAt) return;
  const t = await api("GET", "/api/view-token");
  view = { token: t.token, renewAt: Date.now() + t.ttl_s * 500 };
}
let streams = [];
const tiles = new Map();  // id -> { el, canvas, ws, bitmap, header }
let selected = null;      // { id, ws, clickedAt, shown, live, timer }

const $ = (sel) => document.querySelector(sel);

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  if (r.status === 401) {
    $("#token-button").hidden = false;
    throw new Error("this needs the API token");
  }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error(data && data.detail ? `${data.error}: ${data.detail}` : r.statusText);
  return data;
}

// Where a stream is served: "" for this node, the owner's address (`owner_url`) for a camera
// another node of the cluster runs (WebSockets do not follow redirects; that node allows this
// page's origin).
function ownerBase(id) {
  const s = streams.find((x) => x.id === id);
  return s && s.owner_url ? s.owner_url.replace(/\/+$/, "") : "";
}

function viewUrl(id, params) {
  const q = new URLSearchParams(params);
  if (view.token) q.set("vt", view.token);
  const at = new URL(ownerBase(id) || location.href);
  const proto = at.protocol === "https:" ? "wss" : "ws";
  return `${proto}://${at.host}/streams/${encodeURIComponent(id)}/ws?${q}`;
}

// Opens a picture socket; calls onPicture(bitmap, header) for each picture.
function openPictures(id, params, onPicture, counter) {
  const ws = new WebSocket(viewUrl(id, params));
  ws.binaryType = "arraybuffer";
  let busy = false;
  ws.onopen = () => { if (counter === "tiles" && !(id in stats.marks.wsOpen)) stats.marks.wsOpen[id] = Math.round(performance.now()); };
  ws.onmessage = async (ev) => {
    if (counter === "tiles" && !(id in stats.marks.firstMessage)) stats.marks.firstMessage[id] = Math.round(performance.now());
    stats.bytes[counter] += ev.data.byteLength;
    if (busy) return; // still drawing the last one: skip, the next is newer anyway
    busy = true;
    try {
      const buf = ev.data;
      const n = new DataView(buf).getUint32(0);
      const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
      const bitmap = await createImageBitmap(new Blob([new Uint8Array(buf, 4 + n)], { type: "image/jpeg" }));
      onPicture(bitmap, header);
    } catch (e) {
      console.warn(id, e);
    } finally {
      busy = false;
    }
  };
  ws.onclose = () => setTimeout(() => { if (ws.reopen) ws.reopen(); }, 1000);
  return ws;
}

function draw(canvas, bitmap) {
  if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
    canvas.width = bitmap.width;
    canvas.height = bitmap.height;
  }
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
}

function ensureTile(s) {
  if (tiles.has(s.id)) return tiles.get(s.id);
  const el = document.createElement("div");
  el.className = "tile";
  el.dataset.id = s.id;
  el.innerHTML = `<canvas width="320" height="180"></canvas><div class="label"><span class="badge"></span><b></b><span class="info"></span></div>`;
  el.querySelector("b").textContent = s.id;
  el.addEventListener("click", () => select(s.id));
  $("#wall").appendChild(el);
  const tile = { el, canvas: el.querySelector("canvas"), ws: null, bitmap: null, header: null };
  tiles.set(s.id, tile);
  return tile;
}

function connectTile(id, tile) {
  if (tile.ws) return;
  {
    tile.ws = openPictures(id, TILE, (bitmap, header) => {
      firstShown(id);
      if (tile.bitmap) tile.bitmap.close();
      tile.bitmap = bitmap;
      tile.header = header;
      stats.latencyMs[id] = Date.now() - header.capture_ms;
      draw(tile.canvas, bitmap);
    }, "tiles");
    tile.ws.reopen = () => {
      tile.ws = null;
      const s = streams.find((x) => x.id === id);
      if (tiles.has(id) && (!s || s.state !== "stopped")) connectTile(id, tile);
    };
  }
}

function firstShown(id) {
  if (id in stats.firstFrameMs) return;
  stats.firstFrameMs[id] = Math.round(performance.now() - t0);
  stats.firstFrameNavMs[id] = Math.round(performance.now());
}

// The page comes with each tile's newest picture (base64 JPEG): shown before any socket opens.
async function showInlined(id, tile) {
  const b64 = (window.framegateFirst || {})[id];
  if (!b64) return;
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/jpeg" }));
    if (tile.bitmap) { bitmap.close(); return; } // a live picture came first
    tile.bitmap = bitmap;
    draw(tile.canvas, bitmap);
    firstShown(id);
  } catch (e) {
    console.warn(id, e);
  }
}

/** Ends the large view's pictures and video. */
function closeSelected(sel) {
  clearTimeout(sel.timer);
  if (sel.ws) { sel.ws.reopen = null; sel.ws.close(); sel.ws = null; }
  if (sel.live) { sel.live.stop(); sel.live = null; }
}

// The video stays rendered but transparent until it plays: browsers neither decode nor report
// frames of a video that is not displayed.
function showVideo(on) {
  $("#big-video").classList.toggle("waiting", !on);
}

/** Live video for a selection that stayed: it replaces the JPEG pictures once it plays. */
async function startLive(sel) {
  const s = streams.find((x) => x.id === sel.id);
  const live = new LiveVideo(sel.id, $("#big-video"), token, view.token, () => {
    if (selected === sel) select(sel.id, { video: false }); // back to JPEG pictures
  }, !!(s && s.audio && s.audio.source), ownerBase(sel.id));
  sel.live = live;
  const transport = await live.start();
  if (selected !== sel || !transport) return;
  showVideo(true);
  stats.live = { transport, latencyMs: null };
  showSoundButton();
  stats.videoShownMs.push(Math.round(performance.now() - sel.clickedAt));
  // Detections drawn over the video by the page, aligned by RTP timestamp (WebRTC only).
  if (s && (s.detect || []).length) {
    live.drawBoxes($("#big-boxes"));
    stats.boxes = live.boxes ? live.boxes.stats : null;
  }
  if (sel.ws) { sel.ws.reopen = null; sel.ws.close(); sel.ws = null; }
  renderDetails();
}

/** Milliseconds a frame spends in framegate before it is encoded (the stream's medians). */
function serverMs(s) {
  const l = s.latency_ms;
  return (l.queue.p50 || 0) + (l.process.p50 || 0) + (l.encode.p50 || 0);
}

// Sound: autoplay starts muted, as browsers require; a click on the button turns it on (and
// keeps it on for the next camera chosen).
let soundOn = false;
function showSoundButton() {
  const s = selected && streams.find((x) => x.id === selected.id);
  const video = $("#big-video");
  const playing = !video.classList.contains("waiting");
  // WebRTC: the answer's audio track; LL-HLS carries the stream's sound (as AAC) whenever it
  // has some.
  const carried = video.srcObject
    ? !!(video.srcObject.getAudioTracks && video.srcObject.getAudioTracks().length)
    : stats.live.transport === "llhls";
  const hasAudio = !!(s && s.audio && s.audio.source) && carried;
  video.muted = !soundOn;
  const b = $("#sound");
  b.hidden = !(playing && hasAudio);
  b.textContent = soundOn ? "Sound on — click to mute" : "Sound off — click for sound";
  b.setAttribute("aria-pressed", String(soundOn));
}
$("#sound").addEventListener("click", () => {
  soundOn = !soundOn;
  const video = $("#big-video");
  video.muted = !soundOn;
  video.play().catch(() => {});
  showSoundButton();
});

function select(id, opts = {}) {
  const clickedAt = performance.now();
  if (selected) closeSelected(selected);
  showVideo(false);
  $("#sound").hidden = true;
  stats.live = { transport: "jpeg", latencyMs: null };
  for (const t of tiles.values()) t.el.classList.toggle("selected", t.el.dataset.id === id);
  $("#viewer").hidden = false;
  const big = $("#big");
  // No blank frame: the tile's newest picture fills the large view until full-size ones come.
  const tile = tiles.get(id);
  if (tile && tile.bitmap) big.getContext("2d").drawImage(tile.bitmap, 0, 0, big.width, big.height);
  const sel = { id, clickedAt, shown: false, ws: null, live: null, timer: null };
  stats.bytes.big = 0;
  stats.bigSince = clickedAt;
  sel.ws = openPictures(id, BIG, (bitmap, header) => {
    if (selected !== sel) { bitmap.close(); return; }
    draw(big, bitmap);
    bitmap.close();
    stats.latencyMs[id] = Date.now() - header.capture_ms;
    stats.bigLatencyMs.push(stats.latencyMs[id]);
    if (stats.bigLatencyMs.length > 1000) stats.bigLatencyMs.shift();
    if (!sel.shown) {
      sel.shown = true;
      stats.switches.push(Math.round(performance.now() - clickedAt));
    }
  }, "big");
  sel.ws.reopen = () => { if (selected === sel) select(id, opts); };
  selected = sel;
  if (opts.video !== false) sel.timer = setTimeout(() => startLive(sel), LIVE.delayMs);
  renderDetails();
}

/** The large view's latency: JPEG pictures carry their capture time; video is estimated. */
function liveLatencyText(id) {
  const live = stats.live;
  if (live.transport === "jpeg") return id in stats.latencyMs ? `${stats.latencyMs[id]} ms to this page (JPEG)` : "—";
  return live.latencyMs === null ? `${LIVE.names[live.transport]}` :
    `≈ ${live.latencyMs} ms to this page (${LIVE.names[live.transport]}: framegate + network + player buffer)`;
}

/** The stream's MJPEG and WebSocket viewers, one a line. */
function viewersText(list) {
  if (!list) return "—";
  if (!list.length) return "none";
  return `${list.length}\n` + list.map((v) => {
    const secs = Math.round((Date.now() - v.started_ms) / 1000);
    return `${v.viewer || "anonymous"} ${v.ip || ""} · ${v.transport} · ${secs} s${v.watermark ? ` · ID ${v.watermark}` : ""}`;
  }).join("\n");
}

/** One line per detector: model and provider, what it sees now, its counters. */
function detectText(t) {
  if (t.error) return `${t.model}: unusable — ${t.error}`;
  const counts = {};
  for (const d of t.current) counts[d.label] = (counts[d.label] || 0) + 1;
  const now = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ") || "nothing";
  return `${t.model} on ${t.provider}: ${now}\n${t.completed} runs, ${t.dropped} frames skipped while busy, ` +
    `${t.mean_latency_ms.toFixed(0)} ms per result`;
}

function renderDetails() {
  if (!selected) return;
  const s = streams.find((x) => x.id === selected.id);
  const d = $("#details");
  if (!s) { d.textContent = "removed"; return; }
  const outs = s.outputs.map((o) => `${o.kind} ${o.url} (${o.state})`).join("\n") || "none";
  const rows = [
    ["state", s.state + (s.reconnect ? ` — attempt ${s.reconnect.attempt}` : "")],
    ["source", s.source.url],
    ["picture", s.source.width ? `${s.source.width}x${s.source.height} ${s.source.codec || "raw"}` : "—"],
    ["decoder", s.source.decoder ? `${s.source.decoder} (${s.source.hardware ? "GPU" : "CPU"})` : "none (raw source)"],
    ["encoder", s.encoder || "—"],
    ["audio", s.audio && s.audio.source
      ? `${s.audio.source.codec} ${s.audio.source.rate} Hz ${s.audio.source.channels} ch` +
        (s.audio.transcodes.length ? `; transcoded to ${s.audio.transcodes.map((t) => t.codec).join(", ")}` : "")
      : (s.audio && s.audio.ignored ? `not carried: ${s.audio.ignored}` : "none")],
    ["fps in / out", `${s.fps_in.toFixed(1)} / ${s.fps_out.toFixed(1)}`],
    ["dropped", `ingest ${s.dropped.ingest}, outputs ${s.dropped.outputs}`],
    ["latency", liveLatencyText(selected.id)],
    ["outputs", outs],
    ["viewers", viewersText(selected.viewers)],
    ...(s.detect || []).map((t) => ["detect", detectText(t)]),
    ...(s.frames.similar ? [["skip_similar", `${s.frames.similar} of ${s.frames.processed} frames similar`]] : []),
    ["last error", s.last_error ? `${s.last_error.message} (${Math.round(s.last_error.ago_s)} s ago)` : "none"],
  ];
  d.innerHTML = "<dl></dl><div class=actions></div>";
  const dl = d.querySelector("dl");
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v; dd.style.whiteSpace = "pre-wrap";
    dl.append(dt, dd);
  }
  const actions = d.querySelector(".actions");
  const button = (label, fn) => {
    const b = document.createElement("button");
    b.textContent = label;
    b.onclick = async () => { try { await fn(); await refresh(); } catch (e) { alert(e.message); } };
    actions.appendChild(b);
  };
  const path = `/api/streams/${encodeURIComponent(s.id)}`;
  if (s.state === "stopped") button("Start", () => api("POST", `${path}/start`));
  else button("Stop", () => api("POST", `${path}/stop`));
  button("Remove", async () => {
    if (!confirm(`Remove ${s.id}?`)) return;
    await api("DELETE", path);
    $("#viewer").hidden = true;
    selected = null;
  });
  const live = stats.live;
  const lat = live.transport === "jpeg" ? stats.latencyMs[s.id] : live.latencyMs;
  $("#big-label").textContent = `${s.id} — ${s.state} · ${LIVE.names[live.transport]}` +
    (lat !== undefined && lat !== null ? ` · ${live.transport === "jpeg" ? "" : "≈ "}${lat} ms` : "");
}

async function refresh() {
  try {
    streams = await api("GET", "/api/streams");
    if (stats.marks.api === null) stats.marks.api = Math.round(performance.now());
    await ensureViewToken();
  } catch (e) {
    $("#summary").textContent = e.message;
    return;
  }
  const live = streams.filter((s) => s.state === "live").length;
  $("#summary").textContent = `${streams.length} streams, ${live} live`;
  for (const s of streams) {
    const tile = ensureTile(s);
    const badge = tile.el.querySelector(".badge");
    badge.className = `badge ${s.state}`;
    badge.textContent = s.state === "stalled" || (s.state === "reconnecting" && s.frames.slate > 0) ? "no signal" : s.state;
    const lat = stats.latencyMs[s.id];
    tile.el.querySelector(".info").textContent = `${s.fps_out.toFixed(0)} fps${lat !== undefined ? ` · ${lat} ms` : ""}`;
    if (s.state !== "stopped") connectTile(s.id, tile);
  }
  for (const [id, t] of tiles) {
    if (!streams.some((s) => s.id === id)) {
      if (t.ws) { t.ws.reopen = null; t.ws.close(); }
      t.el.remove();
      tiles.delete(id);
    }
  }
  if (selected) {
    const sel = selected;
    try {
      sel.viewers = await api("GET", `/api/streams/${encodeURIComponent(sel.id)}/viewers`);
    } catch (e) {
      sel.viewers = null;
    }
    const s = streams.find((x) => x.id === sel.id);
    if (s && sel.live && sel.live.transport) {
      const delay = await sel.live.delayMs().catch(() => null);
      if (selected === sel && delay !== null) stats.live.latencyMs = Math.round(delay + serverMs(s));
    }
  }
  renderDetails();
}

$("#token-button").onclick = () => {
  const t = prompt("API token", token);
  if (t !== null) {
    token = t.trim();
    view = { token: "", renewAt: 0 };
    localStorage.setItem("framegate-token", token);
    $("#token-button").hidden = true;
    for (const t of tiles.values()) { if (t.ws) t.ws.close(); }
    refresh();
  }
};

$("#add-form").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = { id: f.get("id"), source: f.get("source"), processors: [], outputs: [] };
  if (f.get("overlay")) body.processors.push({ kind: "overlay" });
  if (f.get("rtsp")) body.outputs.push({ kind: "rtsp" });
  try {
    await api("POST", "/api/streams", body);
    $("#add-result").textContent = `added ${body.id}`;
    ev.target.reset();
    await refresh();
  } catch (e) {
    $("#add-result").textContent = e.message;
  }
};

// The page may come with the stream ids: start the tiles before the first API answer.
for (const id of window.framegateStreams || []) {
  const tile = ensureTile({ id });
  showInlined(id, tile);
  connectTile(id, tile);
}
refresh();
setInterval(refresh, 1000);
