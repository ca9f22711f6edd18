#!/usr/bin/env python3
"""Audio benchmark: what a stream's sound costs framegate, in CPU per stream.

N OBS-like publishers (ffmpeg, H.264 640x360@25 and AAC 48 kHz stereo, copied in real time)
push into a local nginx-rtmp; framegate pulls each and pushes it back to nginx. Each row is a
fresh framegate, measured over the same window (its own CPU, from /proc):

  video only            audio = "off"
  audio pass-through    the camera's AAC pushed on as it is (parsed, placed, fanned out)
  WebRTC, video         plus one WebRTC viewer per stream (headless Chromium) without audio
  WebRTC, AAC -> Opus   the same viewers offering audio: one Opus transcode per stream

The differences between rows are the costs: pass-through against video only, AAC -> Opus
against the video-only WebRTC viewers. Chromium's own CPU is not counted.

Usage: scripts/bench-audio.py [--streams 4] [--seconds 20] [--quick]
Writes bench-out/audio.md and bench-out/audio.json.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, api, build_release, cpu_seconds, free_port, nginx, wait_live, wait_port





def row(exe, tmp, name, rtmp, streams, audio, viewers, seconds):
    http = free_port()
    cfg = tmp / f"{name}.toml"
    body = f'[server]\nhttp = "127.0.0.1:{http}"\nrtsp_port = 0\nsummary_interval_s = 0\n'
    for i in range(streams):
        body += (f'\n[[streams]]\nid = "cam{i}"\nsource = "rtmp://127.0.0.1:{rtmp}/live/cam{i}"\n'
                 f'audio = "{"auto" if audio else "off"}"\n'
                 f'outputs = [ {{ kind = "rtmp", url = "rtmp://127.0.0.1:{rtmp}/live/out-{name}-{i}" }} ]\n')
    cfg.write_text(body)
    fg = subprocess.Popen([str(exe), "run", "--config", str(cfg)], cwd=tmp,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = None
    try:
        wait_port(http)
        wait_live(http, settle=3)
        if viewers is not None:
            ids = ",".join(f"cam{i}" for i in range(streams))
            browser = subprocess.Popen(
                ["node", str(ROOT / "tests/browser/whep-hold.mjs"), f"http://127.0.0.1:{http}", ids,
                 str(seconds + 10), "1" if viewers == "audio" else "0"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            # The viewers play (and any transcode runs) before the window opens.
            deadline = time.time() + 30
            while time.time() < deadline:
                sessions = sum(len(api(http, f"/api/streams/cam{i}/whep")) for i in range(streams))
                if sessions >= streams:
                    break
                time.sleep(0.3)
            time.sleep(3)
        c0, t0 = cpu_seconds(fg.pid), time.time()
        time.sleep(seconds)
        c1, t1 = cpu_seconds(fg.pid), time.time()
        status = [api(http, f"/api/streams/cam{i}") for i in range(streams)]
        audio_out = [o.get("audio") for s in status for o in s["outputs"]]
        transcodes = sum(len(s["audio"]["transcodes"]) for s in status)
        fps = min(s["fps_out"] for s in status)
    finally:
        if browser:
            browser.terminate()
            browser.wait()
        fg.terminate()
        fg.wait(timeout=20)
    cores = (c1 - c0) / (t1 - t0)
    return {
        "row": name, "streams": streams, "seconds": round(t1 - t0, 1),
        "framegate_cores": round(cores, 4),
        "cpu_percent_per_stream": round(cores / streams * 100, 2),
        "min_fps_out": round(fps, 1), "transcodes": transcodes,
        "push_audio": audio_out[0],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out")
    a = ap.parse_args()
    if a.quick:
        a.streams, a.seconds = 2, 4
    exe = build_release()
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = tmp / "clip.mkv"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2", "-t", "60",
             "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-bf", "0",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(clip)], check=True)
        rtmp = free_port()
        server = nginx(tmp, rtmp)
        pubs = [subprocess.Popen(
            ["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-c", "copy",
             "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/cam{i}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(a.streams)]
        rows = []
        try:
            time.sleep(2)
            rows.append(row(exe, tmp, "video only", rtmp, a.streams, False, None, a.seconds))
            rows.append(row(exe, tmp, "audio pass-through", rtmp, a.streams, True, None, a.seconds))
            if shutil.which(os.environ.get("CHROMIUM", "/usr/bin/chromium")):
                rows.append(row(exe, tmp, "WebRTC, video", rtmp, a.streams, True, "video", a.seconds))
                rows.append(row(exe, tmp, "WebRTC, AAC -> Opus", rtmp, a.streams, True, "audio",
                                a.seconds))
        finally:
            for p in pubs:
                p.terminate()
            server.terminate()
    by = {r["row"]: r["cpu_percent_per_stream"] for r in rows}
    costs = {"audio pass-through": round(by["audio pass-through"] - by["video only"], 2)}
    if "WebRTC, AAC -> Opus" in by:
        costs["AAC -> Opus (one WebRTC viewer)"] = round(
            by["WebRTC, AAC -> Opus"] - by["WebRTC, video"], 2)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    report = {"machine": machine, "quick": a.quick, "rows": rows, "cost_percent_per_stream": costs}
    (a.out / "audio.json").write_text(json.dumps(report, indent=2))
    md = [f"Machine: {machine}; {a.streams} streams, {a.seconds:.0f} s per row.", "",
          "| row | CPU % per stream | min fps out | transcodes | push audio |", "|---|---|---|---|---|"]
    for r in rows:
        pa = r["push_audio"]
        md.append(f"| {r['row']} | {r['cpu_percent_per_stream']} | {r['min_fps_out']} | "
                  f"{r['transcodes']} | {pa['codec'] + ' ' + pa['mode'] if pa else 'none'} |")
    md += ["", "| cost | CPU % per stream |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in costs.items()]
    (a.out / "audio.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
