#!/usr/bin/env python3
"""Latency benchmark: how much framegate adds, glass to glass, per output. A stamped camera
(`framegate testsrc`) feeds framegate (overlay on), which serves RTSP, pushes RTMP to a local
nginx-rtmp and serves MJPEG; `framegate probe` reads the camera directly and each output, in
the same run, and the difference of the frame ages is what framegate adds.

Usage: scripts/bench-latency.py [--size 1280x720] [--seconds 10]
Writes bench-out/latency.md and bench-out/latency.json.
"""

import argparse
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import free_port, wait_port

ROOT = Path(__file__).resolve().parent.parent
EXE = ROOT / "target" / "release" / "framegate"






def probe(url, seconds):
    r = subprocess.run([str(EXE), "probe", url, "--seconds", str(seconds), "--warmup", "3", "--json"],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    cam, rtsp, http, rtmp = free_port(), free_port(), free_port(), free_port()
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            procs.append(subprocess.Popen(
                [str(EXE), "testsrc", "--rtsp-port", str(cam), "--size", args.size],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            (tmp / "nginx.conf").write_text(
                "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n"
                f"daemon off;\nmaster_process off;\nerror_log {tmp}/error.log;\npid {tmp}/nginx.pid;\n"
                "events { worker_connections 64; }\n"
                f"rtmp {{ server {{ listen 127.0.0.1:{rtmp}; application live {{ live on; }} }} }}\n")
            procs.append(subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(tmp / "nginx.conf")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(cam)
            wait_port(rtmp)
            (tmp / "fg.toml").write_text(
                f'[server]\nrtsp_port = {rtsp}\nhttp = "127.0.0.1:{http}"\nsummary_interval_s = 0\n'
                f'[[streams]]\nid = "cam"\nsource = "rtsp://127.0.0.1:{cam}/cam0"\n'
                'processors = [ { kind = "overlay" } ]\n'
                f'outputs = [ {{ kind = "rtsp" }}, {{ kind = "rtmp", url = "rtmp://127.0.0.1:{rtmp}/live/cam" }} ]\n')
            procs.append(subprocess.Popen([str(EXE), "run", "--config", str(tmp / "fg.toml")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(http)
            time.sleep(2)  # let the RTMP push connect before it is read
            rows = {
                "camera (direct RTSP)": probe(f"rtsp://127.0.0.1:{cam}/cam0", args.seconds),
                "framegate RTSP": probe(f"rtsp://127.0.0.1:{rtsp}/cam", args.seconds),
                "framegate RTMP push via nginx": probe(f"rtmp://127.0.0.1:{rtmp}/live/cam", args.seconds),
                "framegate MJPEG": probe(f"http://127.0.0.1:{http}/streams/cam/mjpeg", args.seconds),
            }
        finally:
            for p in reversed(procs):
                p.terminate()
                p.wait(10)
    base = rows["camera (direct RTSP)"]["age_ms"]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.size}@25 camera, "
        f"{args.seconds:.0f} s per row after 3 s of warm-up, probe with a 50 ms RTSP jitter buffer, "
        f"{os.cpu_count()} cores.",
        "",
        "| path | fps | age p50 / p95 / p99 ms | added by framegate, p50 / p95 ms |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        a = r["age_ms"]
        added = "—" if r is rows["camera (direct RTSP)"] else \
            f"{a['p50'] - base['p50']:.0f} / {a['p95'] - base['p95']:.0f}"
        lines.append(f"| {name} | {r['fps']:.1f} | {a['p50']:.0f} / {a['p95']:.0f} / {a['p99']:.0f} | {added} |")
    md = "\n".join(lines) + "\n"
    (out / "latency.md").write_text(md)
    (out / "latency.json").write_text(json.dumps(rows, indent=2))
    print(md)


if __name__ == "__main__":
    main()
