#!/usr/bin/env python3
"""Live-view benchmark: glass-to-glass latency in a real browser (Debian's headless Chromium)
for WebRTC (WHEP), LL-HLS (hls.js, low-latency mode), MJPEG and the WebSocket, side by side,
from the capture-time stamps of a stamped camera (`framegate testsrc`); the time from the WHEP
POST (or the player's start) to the first frame; and framegate's CPU with 0, 1, 4 and 8
WebRTC viewers of one stream (one encode whatever the viewers). The baseline, in the same run:
the camera read directly by `framegate probe` (what the camera and RTSP cost before framegate
is involved).

Usage: scripts/bench-live-view.py [--size 1280x720] [--seconds 10] [--viewers 1,4,8]
Writes bench-out/live-view.md and bench-out/live-view.json.
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import ROOT, build_release, free_port, wait_live, wait_port


def cpu_seconds(http):
    with urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics", timeout=10) as r:
        text = r.read().decode()
    return float(re.search(r"^process_cpu_seconds_total (\S+)$", text, re.M).group(1))


def idle_cpu(http, seconds):
    """framegate's CPU with no browser viewer (decode, encode, packaging nobody asked for)."""
    c0, t0 = cpu_seconds(http), time.time()
    time.sleep(seconds)
    return round(100 * (cpu_seconds(http) - c0) / (time.time() - t0), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--viewers", default="1,4,8", help="WebRTC viewer counts for the CPU rows")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = build_release()
    cam, http = free_port(), free_port()
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "fg.toml"
        cfg.write_text(
            f'[server]\nhttp = "127.0.0.1:{http}"\nrtsp_port = 0\nsummary_interval_s = 0\n'
            f'[[streams]]\nid = "cam"\nsource = "rtsp://127.0.0.1:{cam}/cam0"\n'
            "[streams.encoder]\nkeyframe_interval = 25\n")
        try:
            procs.append(subprocess.Popen(
                [str(exe), "testsrc", "--rtsp-port", str(cam), "--size", args.size],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(cam)
            procs.append(subprocess.Popen([str(exe), "run", "--config", str(cfg)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(http)
            wait_live(http)
            direct = json.loads(subprocess.run(
                [str(exe), "probe", f"rtsp://127.0.0.1:{cam}/cam0", "--seconds", str(args.seconds),
                 "--json"], capture_output=True, text=True, check=True).stdout)
            idle = idle_cpu(http, args.seconds)
            phases = [{"transport": t, "viewers": 1, "seconds": args.seconds}
                      for t in ("webrtc", "llhls", "mjpeg", "ws")]
            phases += [{"transport": "webrtc", "viewers": int(n), "seconds": args.seconds}
                       for n in args.viewers.split(",") if int(n) != 1]
            r = subprocess.run(
                ["node", str(ROOT / "tests/browser/latency.mjs"), f"http://127.0.0.1:{http}", "cam",
                 json.dumps(phases)], check=True, capture_output=True, text=True)
            results = json.loads(r.stdout.strip().splitlines()[-1])
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(10)
    names = {"webrtc": "WebRTC (WHEP)", "llhls": "LL-HLS (hls.js)", "mjpeg": "MJPEG",
             "ws": "WebSocket (JPEG)"}
    cam_age = direct["age_ms"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.size}@25 stamped "
        f"camera over RTSP, x264 ultrafast 2 Mbit/s with a key frame every second, {args.seconds:.0f} s "
        f"per row after the first frame and 1 s of settling, Chromium {chromium_version()} headless "
        f"on the same machine, {os.cpu_count()} cores. Glass to glass: from the camera's capture "
        "stamp to the moment the browser shows the frame (requestVideoFrameCallback's expected "
        "display time for video, the next animation frame for pictures).",
        "",
        f"Baseline in the same run: the camera read directly by `framegate probe` (RTSP, 50 ms "
        f"jitter buffer) sees its frames {cam_age['p50']:.0f} ms (p50) / {cam_age['p95']:.0f} ms "
        "(p95) after capture.",
        "",
        "| transport | glass to glass p50 / p95 ms | first frame ms | frames shown | framegate CPU |",
        "|---|---|---|---|---|",
    ]
    for p in results[:4]:
        lat = p["latencyMs"]
        lines.append(
            f"| {names[p['transport']]} | {lat['p50']} / {lat['p95']} | {p['firstFrameMs'][0]} | "
            f"{p['frames'][0]} | {p['cpuPercent']} % |")
    lines += ["", "framegate's CPU (percent of one core) by WebRTC viewers of one stream; the "
              "browser decodes every viewer's video on the same two cores:", "",
              "| WebRTC viewers | framegate CPU | H.264 encoders | glass to glass p50 / p95 ms |",
              "|---|---|---|---|", f"| 0 | {idle} % | 1 | — |"]
    for p in [results[0]] + results[4:]:
        lat = p["latencyMs"]
        lines.append(f"| {p['viewers']} | {p['cpuPercent']} % | {p['encoders'][1]} | "
                     f"{lat['p50']} / {lat['p95']} |")
    md = "\n".join(lines) + "\n"
    (out / "live-view.md").write_text(md)
    (out / "live-view.json").write_text(json.dumps({"direct": direct, "idle_cpu": idle,
                                                    "phases": results}, indent=2))
    print(md)


def chromium_version():
    try:
        v = subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout
        return v.split()[1]
    except (OSError, IndexError):
        return "?"


if __name__ == "__main__":
    main()
