#!/usr/bin/env python3
"""Scale benchmark: N camera streams (RTSP, H.264, WxH@FPS) through one framegate process with
the overlay and an RTSP output each; reports framegate's CPU per stream, its memory, and
whether every stream kept real time (fps in and out above 97% of the rate, ingest drops under
1%, no growing queue), read from framegate's own API.

With --search, finds the largest N that stays in real time for each size (doubling, then
halving the gap), and reports memory per stream.

The cameras are `framegate testsrc` in a separate process on the same machine; its CPU is
reported apart (it competes with framegate for the cores, so the search's answer is a floor).

Usage: scripts/bench-streams.py [--streams 8] [--size 640x360] [--fps 25] [--seconds 30]
       scripts/bench-streams.py --search [--sizes 640x360,1280x720] [--max 64] [--seconds 10]
Writes bench-out/streams.md and bench-out/streams.json.
"""

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, api, build_release, cpu_seconds, most_that_pass, free_port, wait_live, wait_port

# A queue p99 above this means frames wait for the processor: the stream is falling behind.
QUEUE_P99_LIMIT_MS = 200



def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(exe, streams, size, fps, seconds):
    """Runs `streams` cameras through framegate; returns (summary, per-stream rows)."""
    cam_port, rtsp_port, http_port = free_port(), free_port(), free_port()
    cams = subprocess.Popen(
        [str(exe), "testsrc", "--rtsp-port", str(cam_port), "--count", str(streams),
         "--size", size, "--fps", str(fps), "--pattern", "ball"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = "".join(
        f'\n[[streams]]\nid = "cam{i}"\nsource = "rtsp://127.0.0.1:{cam_port}/cam{i}"\n'
        f'processors = [ {{ kind = "overlay" }} ]\noutputs = [ {{ kind = "rtsp" }} ]\n'
        for i in range(streams))
    fg = None
    try:
        wait_port(cam_port)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "bench.toml"
            cfg.write_text(
                f'[server]\nrtsp_port = {rtsp_port}\nhttp = "127.0.0.1:{http_port}"\n'
                f'summary_interval_s = 0\n{config}')
            fg = subprocess.Popen([str(exe), "run", "--config", str(cfg)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(http_port)
            wait_live(http_port)
            before = {s["id"]: s for s in api(http_port, "/api/streams")}
            t0, fg0, cam0 = time.time(), cpu_seconds(fg.pid), cpu_seconds(cams.pid)
            time.sleep(seconds)
            t1, fg1, cam1 = time.time(), cpu_seconds(fg.pid), cpu_seconds(cams.pid)
            after = {s["id"]: s for s in api(http_port, "/api/streams")}
            rss = rss_mib(fg.pid)
    finally:
        for p in (fg, cams):
            if p:
                p.terminate()
                p.wait(10)
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
    drop_ratio = drops / max(total_in * wall, 1)
    realtime = drop_ratio < 0.01 and all(
        r["fps_in"] > 0.97 * fps and r["fps_out"] > 0.97 * fps
        and (r["queue_p99_ms"] or 0) < QUEUE_P99_LIMIT_MS for r in rows)
    summary = {
        "streams": streams, "size": size, "fps": fps, "seconds": round(wall, 1),
        "framegate_cores": round(fg_cores, 3),
        "framegate_cpu_ms_per_frame": round((fg1 - fg0) / max(total_in * wall, 1) * 1000, 3),
        "framegate_cores_per_stream": round(fg_cores / streams, 3),
        "framegate_rss_mib": round(rss, 1),
        "cameras_cores": round((cam1 - cam0) / wall, 3),
        "drop_ratio": round(drop_ratio, 4),
        "real_time": realtime,
    }
    return summary, rows


def search(exe, size, fps, seconds, most):
    """The largest stream count in real time (at most `most`), and every measurement taken."""
    tried = {}

    def ok(n):
        if n not in tried:
            tried[n] = measure(exe, n, size, fps, seconds)[0]
            print(f"{size}: {n} streams: {'real time' if tried[n]['real_time'] else 'behind'}",
                  flush=True)
        return tried[n]["real_time"]

    good, capped = most_that_pass(ok, most)
    runs = [tried[k] for k in sorted(tried)]
    best = tried.get(good)
    one = tried.get(1)
    per_stream = None
    if best and one and good > 1:
        per_stream = round((best["framegate_rss_mib"] - one["framegate_rss_mib"]) / (good - 1), 1)
    return {"size": size, "fps": fps, "max_real_time_streams": good,
            "capped": capped, "memory_mib_per_stream": per_stream,
            "at_max": best, "runs": runs}


def machine():
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--search", action="store_true", help="find the most streams in real time")
    ap.add_argument("--sizes", default="640x360,1280x720", help="sizes for --search")
    ap.add_argument("--max", type=int, default=64, help="most streams --search tries")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = build_release()
    when = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())

    if args.search:
        results = [search(exe, s, args.fps, args.seconds, args.max) for s in args.sizes.split(",")]
        lines = [
            f"Measured {when} on {machine()}: cameras {args.fps} fps (RTSP H.264 in, overlay, "
            f"x264 ultrafast, RTSP out), {args.seconds:.0f} s per try; real time = fps in and out "
            f"above 97%, ingest drops under 1%, queue p99 under {QUEUE_P99_LIMIT_MS} ms.",
            "",
            "| size | most streams in real time | framegate cores there | CPU ms/frame | "
            "memory (RSS) | memory per extra stream | cameras' cores (same machine) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in results:
            b = r["at_max"] or {}
            most = f"{r['max_real_time_streams']}{'+' if r['capped'] else ''}"
            lines.append(
                f"| {r['size']} | {most} | {b.get('framegate_cores', '—')} | "
                f"{b.get('framegate_cpu_ms_per_frame', '—')} | {b.get('framegate_rss_mib', '—')} MiB | "
                f"{r['memory_mib_per_stream'] or '—'} MiB | {b.get('cameras_cores', '—')} |")
        md = "\n".join(lines) + "\n"
        (out / "scale.md").write_text(md)
        (out / "scale.json").write_text(json.dumps({"machine": machine(), "sizes": results}, indent=2))
        print(md)
        return

    summary, rows = measure(exe, args.streams, args.size, args.fps, args.seconds)
    summary["machine"] = machine()
    lines = [
        f"Measured {when}: {args.streams} streams of {args.size}@{args.fps} (RTSP H.264 in, "
        f"overlay, x264 ultrafast, RTSP out), {summary['seconds']:.0f} s window, {machine()}.",
        "",
        "| | value |", "|---|---|",
        f"| framegate CPU, all streams | {summary['framegate_cores']:.2f} cores |",
        f"| framegate CPU per stream | {summary['framegate_cores_per_stream']:.3f} cores |",
        f"| framegate CPU per frame | {summary['framegate_cpu_ms_per_frame']:.2f} ms |",
        f"| framegate memory (RSS) | {summary['framegate_rss_mib']:.0f} MiB |",
        f"| the cameras (testsrc, same machine) | {summary['cameras_cores']:.2f} cores |",
        f"| frames dropped (ingest) | {summary['drop_ratio'] * 100:.2f}% |",
        f"| every stream in real time | {'yes' if summary['real_time'] else 'no'} |",
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
