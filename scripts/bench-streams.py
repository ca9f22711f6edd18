#!/usr/bin/env python3
"""Scale benchmark: N camera streams (RTSP, H.264, WxH@FPS) through one framegate process with
the overlay and an RTSP output each; reports framegate's CPU per stream, its memory, and
whether every stream kept real time (fps in/out, drops), read from framegate's own API.

The cameras are `framegate testsrc` in a separate process; its CPU is reported apart.

Usage: scripts/bench-streams.py [--streams 8] [--size 640x360] [--fps 25] [--seconds 30]
Writes bench-out/streams.md and bench-out/streams.json.
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import api, free_port, wait_live, wait_port

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")




def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0





def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    exe = str(ROOT / "target" / "release" / "framegate")

    cam_port, rtsp_port, http_port = free_port(), free_port(), free_port()
    cams = subprocess.Popen(
        [exe, "testsrc", "--rtsp-port", str(cam_port), "--count", str(args.streams),
         "--size", args.size, "--fps", str(args.fps), "--pattern", "ball"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(cam_port)
    streams = "".join(
        f'\n[[streams]]\nid = "cam{i}"\nsource = "rtsp://127.0.0.1:{cam_port}/cam{i}"\n'
        f'processors = [ {{ kind = "overlay" }} ]\noutputs = [ {{ kind = "rtsp" }} ]\n'
        for i in range(args.streams))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(
            f'[server]\nrtsp_port = {rtsp_port}\nhttp = "127.0.0.1:{http_port}"\n'
            f'summary_interval_s = 0\n{streams}')
        fg = subprocess.Popen([exe, "run", "--config", str(cfg)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(http_port)
            wait_live(http_port)
            before = {s["id"]: s for s in api(http_port, "/api/streams")}
            t0, fg0, cam0 = time.time(), cpu_seconds(fg.pid), cpu_seconds(cams.pid)
            time.sleep(args.seconds)
            t1, fg1, cam1 = time.time(), cpu_seconds(fg.pid), cpu_seconds(cams.pid)
            after = {s["id"]: s for s in api(http_port, "/api/streams")}
            rss = rss_mib(fg.pid)
        finally:
            fg.terminate()
            fg.wait(10)
            cams.terminate()
            cams.wait(10)
    wall = t1 - t0
    rows = []
    for sid, a in sorted(after.items()):
        b = before[sid]
        rows.append({
            "stream": sid,
            "fps_in": (a["frames"]["decoded"] - b["frames"]["decoded"]) / wall,
            "fps_out": (a["frames"]["encoded"] - b["frames"]["encoded"]) / wall,
            "dropped_ingest": a["dropped"]["ingest"] - b["dropped"]["ingest"],
            "queue_p99_ms": a["latency_ms"]["queue"]["p99"],
            "encode_p50_ms": a["latency_ms"]["encode"]["p50"],
            "state": a["state"],
        })
    fg_cores = (fg1 - fg0) / wall
    total_in = sum(r["fps_in"] for r in rows)
    drops = sum(r["dropped_ingest"] for r in rows)
    realtime = all(r["fps_in"] > 0.97 * args.fps and r["fps_out"] > 0.97 * args.fps for r in rows)
    summary = {
        "streams": args.streams, "size": args.size, "fps": args.fps, "seconds": round(wall, 1),
        "framegate_cores": round(fg_cores, 3),
        "framegate_cpu_ms_per_frame": round((fg1 - fg0) / max(total_in * wall, 1) * 1000, 3),
        "framegate_cores_per_stream": round(fg_cores / args.streams, 3),
        "framegate_rss_mib": round(rss, 1),
        "cameras_cores": round((cam1 - cam0) / wall, 3),
        "drop_ratio": round(drops / max(total_in * wall, 1), 4),
        "real_time": realtime,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.streams} streams of "
        f"{args.size}@{args.fps} (RTSP H.264 in, overlay, x264 ultrafast, RTSP out), "
        f"{wall:.0f} s window, {summary['machine']}.",
        "",
        "| | value |", "|---|---|",
        f"| framegate CPU, all streams | {fg_cores:.2f} cores |",
        f"| framegate CPU per stream | {fg_cores / args.streams:.3f} cores |",
        f"| framegate CPU per frame | {summary['framegate_cpu_ms_per_frame']:.2f} ms |",
        f"| framegate memory (RSS) | {rss:.0f} MiB |",
        f"| the cameras (testsrc, same machine) | {summary['cameras_cores']:.2f} cores |",
        f"| frames dropped (ingest) | {drops} ({summary['drop_ratio'] * 100:.2f}%) |",
        f"| every stream in real time (fps in and out > 97% of {args.fps}) | {'yes' if realtime else 'no'} |",
        "",
        "| stream | fps in | fps out | dropped | queue p99 ms | encode p50 ms |",
        "|---|---|---|---|---|---|",
    ] + [
        f"| {r['stream']} | {r['fps_in']:.1f} | {r['fps_out']:.1f} | {r['dropped_ingest']} | "
        f"{r['queue_p99_ms']} | {r['encode_p50_ms']} |" for r in rows
    ]
    md = "\n".join(lines) + "\n"
    (out / "streams.md").write_text(md)
    (out / "streams.json").write_text(json.dumps({"summary": summary, "streams": rows}, indent=2))
    print(md)


if __name__ == "__main__":
    main()
