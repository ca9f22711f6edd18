// framegate dashboard: the events panel. Stored events (GET /api/events) filtered by stream,
// kind, class and time, newest first, with snapshots; refreshed every 2 s while "live" is on;
// "Older" pages back with the cursor. Uses api(), streams and token from app.js.
"use strict";

(() => {
  const form = document.querySelector("#event-filter");
  const body = document.querySelector("#event-table tbody");
  const more = document.querySelector("#event-more");
  const status = document.querySelector("#event-status");
  const shown = (window.framegateEvents = { rows: 0, loads: 0, error: null });
  let cursor = null;

  const time = (ms) => new Date(ms).toLocaleString(undefined, { hour12: false });
  const score = (e) => (e.score == null ? "" : ` ${e.score.toFixed(2)}`);

  function describe(e) {
    const d = e.data || {};
    switch (e.kind) {
      case "detection.appeared": return `${e.class}${score(e)} appeared`;
      case "detection.cleared": return `${e.class} gone after ${(d.duration_s || 0).toFixed(1)} s`;
      case "stream.state": return `${d.from} → ${d.state}${d.reason ? `: ${d.reason}` : ""}`;
      case "viewer.started": return `${d.viewer || d.ip || "viewer"} started (${d.transport})`;
      case "viewer.ended": return `${d.viewer || d.ip || "viewer"} left after ${Math.round(d.duration_s || 0)} s`;
      case "config.changed": return `${d.action} through the API`;
      case "alert": return `alert ${d.rule}: ${e.class}${score(e)}`;
      default: return e.kind;
    }
  }

  function query() {
    const f = new FormData(form);
    const q = new URLSearchParams({ limit: "50" });
    for (const k of ["stream", "kind", "class"]) if (f.get(k)) q.set(k, f.get(k));
    if (f.get("since")) q.set("since", String(new Date(f.get("since")).getTime()));
    return q;
  }

  function row(e) {
    const tr = document.createElement("tr");
    tr.className = e.kind.replace(".", "-");
    for (const text of [time(e.at_ms), e.stream || "", e.kind, describe(e)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    if (e.snapshot) {
      const src = `/api/events/${e.id}/snapshot.jpg${view.token ? `?vt=${encodeURIComponent(view.token)}` : ""}`;
      const a = document.createElement("a");
      a.href = src;
      a.target = "_blank";
      const img = document.createElement("img");
      img.src = src;
      img.loading = "lazy";
      img.alt = "snapshot";
      a.appendChild(img);
      td.appendChild(a);
    }
    tr.appendChild(td);
    return tr;
  }

  async function load(older) {
    const q = query();
    if (older && cursor) q.set("cursor", cursor);
    try {
      const page = await api("GET", `/api/events?${q}`);
      if (!older) body.replaceChildren();
      for (const e of page.events) body.appendChild(row(e));
      cursor = page.next_cursor;
      more.hidden = !cursor;
      shown.rows = body.children.length;
      shown.loads += 1;
      shown.error = null;
      status.textContent = shown.rows ? "" : "no events";
    } catch (e) {
      shown.error = e.message;
      status.textContent = e.message;
    }
  }

  function fillStreams() {
    const select = form.elements.stream;
    const have = new Set([...select.options].map((o) => o.value));
    for (const s of (typeof streams !== "undefined" ? streams : [])) {
      if (have.has(s.id)) continue;
      const o = document.createElement("option");
      o.value = o.textContent = s.id;
      select.appendChild(o);
    }
  }

  form.addEventListener("change", () => load(false));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
  more.onclick = () => load(true);
  setInterval(() => {
    fillStreams();
    // Live: the newest page again, unless the user is reading older pages.
    if (form.elements.live.checked && body.children.length <= 50) load(false);
  }, 2000);
  fillStreams();
  load(false);
})();
