#!/usr/bin/env python3
"""Browser benchmark: framegate's dashboard in headless Chromium (Debian's, through
playwright-core) with 4 streams: time to each tile's first picture, switch time (click to the new
camera's first full-size picture) over 50 switches, picture latency in the large view (capture
to drawn), and bandwidth per viewer for a wall tile and the large view.

Usage: scripts/bench-dashboard.py [--size 1920x1080] [--switches 50] [--seconds 10]
Writes bench-out/dashboard.md and bench-out/dashboard.json.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchlib import build_release, free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent




def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--switches", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--reloads", type=int, default=10, help="page loads timed after the run")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    w, h = args.size.split("x")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = build_release()
    http, rtsp = free_port(), free_port()
    streams = "".join(
        f'\n[[streams]]\nid = "cam{i}"\nsource = "test://{p}?width={w}&height={h}&fps=25&speed=3"\n'
        f'processors = [ {{ kind = "overlay" }} ]\n'
        for i, p in enumerate(["ball", "smpte", "pinwheel", "gradient"]))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(f'[server]\nhttp = "127.0.0.1:{http}"\nrtsp_port = {rtsp}\nsummary_interval_s = 0\n{streams}')
        fg = subprocess.Popen([str(exe), "run", "--config", str(cfg)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(http)
            deadline = time.time() + 30
            # Measure a running gateway: every stream live before the page loads.
            while time.time() < deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{http}/api/streams") as resp:
                    if all(s["state"] == "live" for s in json.load(resp)):
                        break
                time.sleep(0.2)
            r = subprocess.run(
                ["node", str(ROOT / "tests/browser/dashboard.mjs"), f"http://127.0.0.1:{http}/", "4",
                 str(args.switches), str(out / "dashboard.png"), str(args.seconds)],
                check=True, capture_output=True, text=True,
                env={**os.environ, "RELOADS": str(args.reloads)})
        finally:
            fg.terminate()
            fg.wait(10)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    first = list(res["firstFrameMs"].values())
    loads = res.get("reloads") or []
    by_script = [l["script"] for l in loads] or [max(first)]
    by_nav = [l["navigation"] for l in loads] or [max(res["firstFrameNavMs"].values())]
    sw = res["switches"]
    lat = res["bigLatencyMs"]
    summary = {
        "size": args.size,
        "first_frame_ms": {"first_load_each": first,
                           "after_script_start": {"p50": pct(by_script, 0.5), "max": max(by_script)},
                           "after_navigation": {"p50": pct(by_nav, 0.5), "max": max(by_nav)},
                           "loads": len(by_script)},
        "switch_ms": {"p50": pct(sw, 0.5), "p95": pct(sw, 0.95), "max": max(sw), "n": len(sw)},
        "large_view_latency_ms": {"p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "n": len(lat)},
        "bandwidth_kbit_s": res["bandwidth"],
        "blank_after_click": res["blankAfterClick"],
        "cores": os.cpu_count(),
    }
    md = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: 4 streams of {args.size}@25 "
        f"with the overlay, framegate and headless Chromium on the same {os.cpu_count()}-core machine.",
        "",
        "| measure | framegate | figure to beat |",
        "|---|---|---|",
        f"| first tile picture, slowest of 4, after the page's script starts: p50 / max of {len(by_script)} loads "
        f"| {pct(by_script, 0.5)} / {max(by_script)} ms | 200 ms |",
        f"| the same from navigation start (loading the page included) | {pct(by_nav, 0.5)} / {max(by_nav)} ms | — |",
        f"| switch: click to the new camera's first full-size picture, p50 / p95 ({len(sw)} switches) | "
        f"{pct(sw, 0.5)} / {pct(sw, 0.95)} ms | 200-500 ms |",
        f"| blank large view right after a click | {res['blankAfterClick']} of {len(sw)} | — |",
        f"| picture latency in the large view (capture to drawn), p50 / p95 | {pct(lat, 0.5)} / {pct(lat, 0.95)} ms | 500 ms |",
        f"| bandwidth per tile viewer (320 px wide, 5 fps) | {res['bandwidth']['tileKbitPerViewer']} kbit/s | — |",
        f"| bandwidth of the large view ({args.size}, every frame) | {res['bandwidth']['bigKbit']} kbit/s | — |",
    ]) + "\n"
    (out / "dashboard.md").write_text(md)
    (out / "dashboard.json").write_text(json.dumps(summary, indent=2))
    print(md)


if __name__ == "__main__":
    main()
