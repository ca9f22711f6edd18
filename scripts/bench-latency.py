#!/usr/bin/env python3
"""Latency benchmark: how much framegate adds, glass to glass, per output, next to the peer
baseline. A stamped camera (`framegate testsrc`) feeds framegate (overlay on), which serves
RTSP, pushes RTMP to a local nginx-rtmp and serves MJPEG and WebSocket; the peer baseline
(ffmpeg → Python/OpenCV overlay → ffmpeg, scripts/peer/overlay_pipe.py) reads the same camera
and pushes RTMP to the same nginx. `framegate probe` reads the camera directly and each output,
in the same run; the difference of the frame ages is what each path adds.

Usage: scripts/bench-latency.py [--size 1280x720] [--seconds 10] [--warmup 3]
Writes bench-out/latency.md and bench-out/latency.json.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, build_release, free_port, wait_port

PYTHON = ROOT / "target" / "pytools" / "bin" / "python"
DIRECT = "camera (direct RTSP)"


def probe(exe, url, seconds, warmup):
    r = subprocess.run([str(exe), "probe", url, "--seconds", str(seconds), "--warmup", str(warmup),
                        "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout)


def peer_command(cam_url, rtmp_url, size):
    """The peer baseline with every low-latency flag ffmpeg offers on both ends."""
    w, h = size.split("x")
    return ["bash", "-c",
            f"ffmpeg -v error -fflags nobuffer -flags low_delay -rtsp_transport tcp "
            f"-probesize 32768 -analyzeduration 0 -i {cam_url} -f rawvideo -pix_fmt bgr24 - | "
            f"{PYTHON} {ROOT}/scripts/peer/overlay_pipe.py {w} {h} cam | "
            f"ffmpeg -v error -f rawvideo -pix_fmt bgr24 -s {size} -r 25 -i - -c:v libx264 "
            f"-preset ultrafast -tune zerolatency -b:v 2000k -g 50 -bf 0 -flush_packets 1 "
            f"-f flv {rtmp_url}"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = build_release()
    cam, rtsp, http, rtmp = free_port(), free_port(), free_port(), free_port()
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            procs.append(subprocess.Popen(
                [str(exe), "testsrc", "--rtsp-port", str(cam), "--size", args.size],
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
            procs.append(subprocess.Popen([str(exe), "run", "--config", str(tmp / "fg.toml")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            procs.append(subprocess.Popen(
                peer_command(f"rtsp://127.0.0.1:{cam}/cam0", f"rtmp://127.0.0.1:{rtmp}/live/peer",
                             args.size), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(http)
            time.sleep(2)  # let the RTMP pushes connect before they are read
            p = lambda url: probe(exe, url, args.seconds, args.warmup)  # noqa: E731
            rows = {
                DIRECT: p(f"rtsp://127.0.0.1:{cam}/cam0"),
                "framegate RTSP": p(f"rtsp://127.0.0.1:{rtsp}/cam"),
                "framegate RTMP push via nginx": p(f"rtmp://127.0.0.1:{rtmp}/live/cam"),
                "peer RTMP push via nginx": p(f"rtmp://127.0.0.1:{rtmp}/live/peer"),
                "framegate MJPEG": p(f"http://127.0.0.1:{http}/streams/cam/mjpeg"),
                "framegate WebSocket": p(f"ws://127.0.0.1:{http}/streams/cam/ws"),
            }
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(10)
    base = rows[DIRECT].get("age_ms")
    for name, r in rows.items():
        a = r.get("age_ms")
        if a and base and name != DIRECT:
            r["added_ms"] = {k: round(a[k] - base[k], 1) for k in ("p50", "p95", "p99")}
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.size}@25 camera, "
        f"{args.seconds:.0f} s per row after {args.warmup:.0f} s of warm-up, probe with a 50 ms "
        f"RTSP jitter buffer, {os.cpu_count()} cores. The peer baseline has no RTSP server or "
        "browser output of its own, so it is compared on the RTMP path.",
        "",
        "| path | fps | age p50 / p95 / p99 ms | added p50 / p95 / p99 ms |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        a = r.get("age_ms")
        if not a:
            lines.append(f"| {name} | — | {r.get('error', 'no stamped frame')} | — |")
            continue
        d = r.get("added_ms")
        added = f"{d['p50']:.0f} / {d['p95']:.0f} / {d['p99']:.0f}" if d else "—"
        lines.append(f"| {name} | {r['fps']:.1f} | {a['p50']:.0f} / {a['p95']:.0f} / {a['p99']:.0f} | {added} |")
    md = "\n".join(lines) + "\n"
    (out / "latency.md").write_text(md)
    (out / "latency.json").write_text(json.dumps(rows, indent=2))
    print(md)


if __name__ == "__main__":
    main()
