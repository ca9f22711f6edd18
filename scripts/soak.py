#!/usr/bin/env python3
"""Soak: framegate with 16 camera streams for a long time, with viewers coming and going and the
cameras killed and restarted, sampling its memory, open files, threads and latency.

    scripts/soak.py --minutes 60            # the long run of docs/reliability.md
    scripts/soak.py --minutes 2 --kill-every 30 --json out  # the CI run (tests/soak.rs)

Two `framegate testsrc` processes are the cameras (8 stamped RTSP cameras each, 320x240 at
25 fps); every `--kill-every` seconds one of them is killed and started again (8 streams lose
their source at once, show the slate, reconnect). A viewer loop opens MJPEG viewers, reads a few
pictures and leaves, and takes snapshots, all the time. Every `--sample` seconds: RSS, open
files, threads, and the streams' encode latency p99 and states. At the end: a CSV, a summary
JSON, and with matplotlib a plot (docs/img/soak.png for the long run).

Exits non-zero when something leaks: open files or threads end higher than after warm-up by
more than a margin, or RSS grows by more than 25% after warm-up, or a stream is not live at the
end.
"""

import argparse
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, api, build_release, free_port, wait_port  # noqa: E402

STREAMS = 16
PER_CAMERA_PROCESS = 8


def proc_sample(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:"))
    threads = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("Threads:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss // 1024, fds, threads


class Cameras:
    """A `framegate testsrc` process serving 8 cameras; can be killed and started again."""

    def __init__(self, exe, port):
        self.exe, self.port, self.proc = exe, port, None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [str(self.exe), "testsrc", "--rtsp-port", str(self.port), "--count",
             str(PER_CAMERA_PROCESS), "--size", "320x240"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.kill()


def viewers(http, stop, counts):
    """MJPEG viewers that read a few pictures and leave; snapshots in between."""
    rng = random.Random(7)
    while not stop.is_set():
        cam = f"cam{rng.randrange(STREAMS)}"
        try:
            with socket.create_connection(("127.0.0.1", http), timeout=5) as s:
                s.sendall(f"GET /streams/{cam}/mjpeg?width=160&fps=10 HTTP/1.1\r\n"
                          f"Host: 127.0.0.1:{http}\r\n\r\n".encode())
                got, deadline = 0, time.time() + rng.uniform(0.5, 3)
                while time.time() < deadline:
                    got += len(s.recv(65536))
                counts["viewer_bytes"] += got
                counts["viewers"] += 1
            with socket.create_connection(("127.0.0.1", http), timeout=5) as s:
                s.sendall(f"GET /streams/{cam}/snapshot.jpg HTTP/1.1\r\nHost: 127.0.0.1:{http}\r\n"
                          f"Connection: close\r\n\r\n".encode())
                while s.recv(65536):
                    pass
                counts["snapshots"] += 1
        except OSError:
            counts["viewer_errors"] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--sample", type=float, default=10, help="seconds between samples")
    ap.add_argument("--kill-every", type=float, default=45, help="seconds between camera kills")
    ap.add_argument("--warmup", type=float, default=30, help="seconds before the baseline sample")
    ap.add_argument("--json", help="write the summary here")
    ap.add_argument("--plot", help="write the plot here (matplotlib)")
    args = ap.parse_args()

    exe = build_release()
    work = Path(tempfile.mkdtemp(prefix="framegate-soak-"))
    cam_ports = [free_port() for _ in range(STREAMS // PER_CAMERA_PROCESS)]
    cameras = [Cameras(exe, p) for p in cam_ports]
    http = free_port()
    streams = "".join(
        f'\n[[streams]]\nid = "cam{i}"\n'
        f'source = "rtsp://127.0.0.1:{cam_ports[i // PER_CAMERA_PROCESS]}/cam{i % PER_CAMERA_PROCESS}"\n'
        f'stall_timeout_s = 1.0\nreconnect = {{ initial_s = 0.5, max_s = 2.0 }}\n'
        for i in range(STREAMS))
    config = work / "soak.toml"
    config.write_text(f'[server]\nhttp = "127.0.0.1:{http}"\nrtsp_port = 0\nsummary_interval_s = 0\n'
                      f'[database]\nurl = "none"\n{streams}')
    fg = subprocess.Popen([str(exe), "run", "--config", str(config)],
                          stdout=subprocess.DEVNULL, stderr=open(work / "framegate.log", "w"))
    rows, baseline = [], None
    stop = threading.Event()
    counts = {"viewers": 0, "snapshots": 0, "viewer_bytes": 0, "viewer_errors": 0, "kills": 0}
    try:
        wait_port(http)
        deadline = time.time() + 60
        while time.time() < deadline and not all(
                s["state"] == "live" for s in api(http, "/api/streams")):
            time.sleep(0.5)
        threading.Thread(target=viewers, args=(http, stop, counts), daemon=True).start()
        t0 = time.time()
        end = t0 + args.minutes * 60
        next_sample, next_kill = t0, t0 + args.kill_every
        while time.time() < end:
            now = time.time()
            if now >= next_kill:
                victim = cameras[counts["kills"] % len(cameras)]
                victim.kill()
                time.sleep(2)
                victim.start()
                counts["kills"] += 1
                next_kill = now + args.kill_every
            if now >= next_sample:
                rss, fds, threads = proc_sample(fg.pid)
                st = api(http, "/api/streams")
                p99 = max((s["latency_ms"]["encode"] or {}).get("p99") or 0 for s in st)
                live = sum(s["state"] == "live" for s in st)
                row = {"t_s": round(now - t0, 1), "rss_mb": rss, "fds": fds, "threads": threads,
                       "encode_p99_ms": round(p99, 2), "live": live}
                rows.append(row)
                if baseline is None and now - t0 >= min(args.warmup, args.minutes * 60 / 3):
                    baseline = row
                next_sample = now + args.sample
            time.sleep(0.2)
        # The end: every camera back, every stream live again.
        deadline = time.time() + 30
        while time.time() < deadline and not all(
                s["state"] == "live" for s in api(http, "/api/streams")):
            time.sleep(0.5)
        final_states = [s["state"] for s in api(http, "/api/streams")]
        rss, fds, threads = proc_sample(fg.pid)
        final = {"rss_mb": rss, "fds": fds, "threads": threads}
    finally:
        stop.set()
        fg.send_signal(signal.SIGTERM)
        try:
            fg.wait(10)
        except subprocess.TimeoutExpired:
            fg.kill()
        for c in cameras:
            c.stop()

    baseline = baseline or rows[0]
    problems = []
    if final["fds"] > baseline["fds"] + 40:
        problems.append(f"open files {baseline['fds']} -> {final['fds']}")
    if final["threads"] > baseline["threads"] + 24:
        problems.append(f"threads {baseline['threads']} -> {final['threads']}")
    if final["rss_mb"] > baseline["rss_mb"] * 1.25 + 20:
        problems.append(f"RSS {baseline['rss_mb']} -> {final['rss_mb']} MB")
    if any(s != "live" for s in final_states):
        problems.append(f"not live at the end: {final_states}")
    summary = {
        "machine": f"{os.cpu_count()} cores", "minutes": args.minutes, "streams": STREAMS,
        "camera_kills": counts["kills"], "viewers": counts["viewers"],
        "snapshots": counts["snapshots"], "viewer_errors": counts["viewer_errors"],
        "baseline": baseline, "final": final,
        "encode_p99_ms_max": max(r["encode_p99_ms"] for r in rows),
        "samples": len(rows), "problems": problems,
    }
    with open(work / "soak.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(4, 1, figsize=(8, 8), sharex=True)
        t = [r["t_s"] / 60 for r in rows]
        for ax, key, label in zip(axes, ["rss_mb", "fds", "threads", "encode_p99_ms"],
                                  ["RSS (MB)", "open files", "threads", "encode p99 (ms)"]):
            ax.plot(t, [r[key] for r in rows])
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[-1].set_xlabel(f"minutes ({STREAMS} streams, a camera process killed every "
                            f"{args.kill_every:.0f} s, viewers coming and going)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=90)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    print(f"samples: {work / 'soak.csv'}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
