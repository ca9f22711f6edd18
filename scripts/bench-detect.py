#!/usr/bin/env python3
"""Detection benchmark: one shared model (the demo's CenterNet, on the CPU) over 1, 4 and 8
streams of real footage with people, at max_batch 1, 4 and 8; the same streams with detection
off; and the same model in Python ONNX Runtime, all in one run on this machine.

Reports inferences per second, frames per second of video, the model thread's CPU time per
inference (pre-processing from YUV included) against Python ONNX Runtime's (run alone, and with
Pillow pre-processing), and whether every stream kept its frame rate.

Needs `scripts/setup-debian.sh` (the model, the footage, ONNX Runtime in target/).
Usage: scripts/bench-detect.py [--seconds 10] [--streams 1,4,8] [--batches 1,4,8]
Writes bench-out/detect.md and bench-out/detect.json.
"""

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, api, build_release, free_port, wait_live, wait_port

TICKS = os.sysconf("SC_CLK_TCK")
ASSETS = ROOT / "target" / "assets"
MODEL = ASSETS / "models" / "centernet.onnx"
FOOTAGE = ASSETS / "media" / "people.mp4"
FOOTAGE_FPS = 10.0

PYTHON_REFERENCE = r"""
import sys, time, numpy as np, onnxruntime as ort
from PIL import Image
model, n = sys.argv[1], int(sys.argv[2])
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
name = s.get_inputs()[0].name
frame = Image.fromarray((np.random.default_rng(1).random((576, 768, 3)) * 255).astype(np.uint8))
x = np.asarray(frame.resize((512, 512), Image.BILINEAR), dtype=np.float32)[None]
s.run(None, {name: x})
t = time.process_time()
for _ in range(n): s.run(None, {name: x})
run = (time.process_time() - t) / n
t = time.process_time()
for _ in range(n):
    x = np.asarray(frame.resize((512, 512), Image.BILINEAR), dtype=np.float32)[None]
    s.run(None, {name: x})
print(run * 1000, (time.process_time() - t) / n * 1000)
"""



def thread_cpu(pid, name):
    """CPU seconds of the process's threads called `name`."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == name:
                f = (task / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / TICKS
        except OSError:
            pass
    return total


def run_case(exe, streams, batch, detect, seconds):
    http = free_port()
    procs = '{ kind = "overlay" }'
    if detect:
        procs = '{ kind = "detect", model = "coco", min_score = 0.35 }, ' + procs
    cfg_text = (
        f'[server]\nrtsp_port = 0\nhttp = "127.0.0.1:{http}"\nsummary_interval_s = 0\n'
        f'[[models]]\nid = "coco"\npath = "{MODEL}"\nformat = "centernet"\nthreads = 1\n'
        f'max_batch = {batch}\nmax_wait_ms = 10\n'
        + "".join(f'[[streams]]\nid = "cam{i}"\nsource = "file://{FOOTAGE}"\n'
                  f"processors = [ {procs} ]\n" for i in range(streams)))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(cfg_text)
        fg = subprocess.Popen([exe, "run", "--config", str(cfg)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(http)
            wait_live(http)
            s0, m0 = api(http, "/api/streams"), api(http, "/api/models")
            t0, c0 = time.time(), thread_cpu(fg.pid, "model-coco")
            time.sleep(seconds)
            s1, m1 = api(http, "/api/streams"), api(http, "/api/models")
            t1, c1 = time.time(), thread_cpu(fg.pid, "model-coco")
        finally:
            fg.terminate()
            fg.wait(10)
    wall = t1 - t0
    fps = [(b["frames"]["encoded"] - a["frames"]["encoded"]) / wall for a, b in zip(s0, s1)]
    inputs = (m1[0]["inputs"] - m0[0]["inputs"]) if m1 else 0
    batches = (m1[0]["batches"] - m0[0]["batches"]) if m1 else 0
    return {
        "streams": streams, "max_batch": batch, "detect": detect,
        "video_fps_total": round(sum(fps), 1),
        "video_fps_min": round(min(fps), 1),
        "real_time": min(fps) >= 0.95 * FOOTAGE_FPS,
        "inferences_per_s": round(inputs / wall, 2),
        "mean_batch": round(inputs / batches, 2) if batches else None,
        "model_cpu_ms_per_inference": round((c1 - c0) / inputs * 1000, 1) if inputs else None,
        "sessions": m1[0]["sessions_in_process"] if m1 else 0,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("--batches", default="1,4,8")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    for p in (MODEL, FOOTAGE):
        if not p.exists():
            raise SystemExit(f"{p} is missing: run scripts/setup-debian.sh")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = str(build_release())
    streams = [int(s) for s in args.streams.split(",")]
    batches = [int(b) for b in args.batches.split(",")]

    py = subprocess.run([str(ROOT / "target/pytools/bin/python"), "-c", PYTHON_REFERENCE,
                         str(MODEL), "30"], capture_output=True, text=True, check=True)
    py_run, py_total = (float(v) for v in py.stdout.split())
    rows = []
    for n in streams:
        rows.append(run_case(exe, n, 1, False, args.seconds))
        for b in batches:
            rows.append(run_case(exe, n, b, True, args.seconds))
            print(rows[-1], flush=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}: CenterNet "
        f"(MobileNetV3, 512x512, batch fixed at 1) on the CPU with 1 thread; every stream is "
        f"{FOOTAGE.name} (768x576@10, H.264) with `detect` on every frame and the overlay; "
        f"{args.seconds:.0f} s windows.",
        "",
        f"Python ONNX Runtime, same model, 1 thread: **{py_run:.1f} ms CPU per inference** "
        f"(run only), {py_total:.1f} ms with Pillow pre-processing.",
        "",
        "| streams | detect | max_batch | video fps (all streams) | slowest stream fps | real time | "
        "inferences/s | mean batch | model CPU ms/inference | vs Python (with pre-processing) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cpu = r["model_cpu_ms_per_inference"]
        ratio = f"{cpu / py_total:.2f}x" if cpu else "—"
        lines.append(
            f"| {r['streams']} | {'on' if r['detect'] else 'off'} | "
            f"{r['max_batch'] if r['detect'] else '—'} | {r['video_fps_total']} | "
            f"{r['video_fps_min']} | {'yes' if r['real_time'] else 'no'} | "
            f"{r['inferences_per_s'] if r['detect'] else '—'} | {r['mean_batch'] or '—'} | "
            f"{cpu or '—'} | {ratio} |")
    md = "\n".join(lines) + "\n"
    (out / "detect.md").write_text(md)
    (out / "detect.json").write_text(json.dumps(
        {"machine": machine, "python_ms_run": py_run, "python_ms_with_preprocess": py_total,
         "rows": rows}, indent=2))
    print(md)


if __name__ == "__main__":
    main()
