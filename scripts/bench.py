#!/usr/bin/env python3
"""All of framegate's benchmarks in one go, on this machine, side by side with their baselines:

- throughput: CPU per frame at 720p and 1080p for framegate (overlay on), a plain gst-launch
  transcode (the floor) and the peer baseline (ffmpeg → Python/OpenCV → ffmpeg);
- latency: what framegate adds glass to glass on RTSP, RTMP (via nginx-rtmp), MJPEG and
  WebSocket, next to the peer baseline on RTMP;
- scale: the most 640x360@25 and 1280x720@25 streams framegate keeps in real time, and memory
  per stream;
- pass-through scale: the most 720p25 cameras of real footage in real time transcoded with an
  overlay, passed through with every frame decoded for the detector, and passed through with
  key frames decoded, each against its codec-bound limit measured in the same run;
- Python processors: the marginal CPU per frame of a no-op `python` processor, and of the peer's
  OpenCV overlay run on `frame.bgr()` against the same code in the peer pipe.

Writes bench-out/report.md, report.json and report.png (a chart), plus each part's own files.
`--quick` runs every part for a few seconds (what CI does, so that the benchmark cannot rot);
its numbers only prove that everything runs.

Usage: scripts/bench.py [--quick] [--out DIR]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT, build_release

PYTHON = ROOT / "target" / "pytools" / "bin" / "python"

FULL = {
    "transcode": ["--rounds", "3", "--frames", "500"],
    "latency": ["--seconds", "10", "--warmup", "3"],
    "scale": ["--search", "--seconds", "10", "--max", "64"],
    "passthrough": ["--seconds", "10", "--max", "128"],
    "python": ["--rounds", "3"],
}
QUICK = {
    "transcode": ["--rounds", "1", "--frames", "40"],
    "latency": ["--seconds", "2", "--warmup", "1"],
    "scale": ["--search", "--seconds", "2", "--max", "2"],
    "passthrough": ["--quick"],
    "python": ["--rounds", "1", "--short", "20", "--long", "40"],
}
SCRIPTS = {"transcode": "bench-transcode.py", "latency": "bench-latency.py", "scale": "bench-streams.py",
           "passthrough": "bench-scale.py", "python": "bench-python.py"}
OUTPUTS = {"transcode": "transcode", "latency": "latency", "scale": "scale",
           "passthrough": "scale-passthrough", "python": "python"}


def machine():
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} cores, {platform.platform()}"


def chart(report, path):
    """Three panels: CPU per frame, added latency, most streams in real time."""
    script = r"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
r = json.load(open(sys.argv[1]))
fig, ax = plt.subplots(1, 3, figsize=(16, 4.8))
rows = r["transcode"]["rows"]
clips = sorted({x["clip"] for x in rows}, key=lambda c: int(c.rstrip("p")))
pipes = list(dict.fromkeys(x["pipeline"] for x in rows))
w = 0.8 / len(pipes)
for i, p in enumerate(pipes):
    ys = [next((x["cpu_ms_per_frame"] for x in rows if x["clip"] == c and x["pipeline"] == p), 0) for c in clips]
    ax[0].bar([j + i * w for j in range(len(clips))], ys, w, label=p)
ax[0].set_xticks([j + w * (len(pipes) - 1) / 2 for j in range(len(clips))], clips)
ax[0].set_ylabel("CPU ms per frame (lower is better)")
ax[0].set_title("Throughput")
ax[0].legend(fontsize=7)
lat = {k: v for k, v in r["latency"].items() if "added_ms" in v}
names = list(lat)
ax[1].barh(names, [lat[n]["added_ms"]["p50"] for n in names], label="p50")
ax[1].barh(names, [lat[n]["added_ms"]["p95"] - lat[n]["added_ms"]["p50"] for n in names],
           left=[lat[n]["added_ms"]["p50"] for n in names], alpha=0.5, label="to p95")
ax[1].set_xlabel("ms added to the camera's own latency")
ax[1].set_title("Glass-to-glass latency added")
ax[1].tick_params(axis="y", labelsize=7)
ax[1].legend(fontsize=7)
sizes = r["scale"]["sizes"]
ax[2].bar([s["size"] for s in sizes], [s["max_real_time_streams"] for s in sizes])
ax[2].set_ylabel("streams in real time")
ax[2].set_title("Scale (one process)")
fig.suptitle(r["title"], fontsize=9)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
"""
    src = path.with_suffix(".json")
    subprocess.run([str(PYTHON), "-c", script, str(src), str(path)], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few seconds per row (CI)")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = build_release()
    env = dict(os.environ, FRAMEGATE_EXE=str(exe))
    plan = QUICK if args.quick else FULL
    started = time.time()
    report = {"machine": machine(), "quick": args.quick,
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    sections = []
    for part, extra in plan.items():
        print(f"== {part}", flush=True)
        subprocess.run([sys.executable, str(ROOT / "scripts" / SCRIPTS[part]), "--out", str(out),
                        *extra], check=True, env=env)
        name = OUTPUTS[part]
        report[part] = json.loads((out / f"{name}.json").read_text())
        sections.append((part, (out / f"{name}.md").read_text()))
    report["title"] = f"framegate benchmarks, {report['when']}, {report['machine']}" + \
        (" (quick run: numbers not meaningful)" if args.quick else "")
    report["seconds"] = round(time.time() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    chart(report, out / "report.png")
    titles = {"transcode": "Throughput", "latency": "Latency", "scale": "Scale",
              "passthrough": "Scale: paying only for what changes pixels",
              "python": "Python processors"}
    md = [f"# {report['title']}", "", "![chart](report.png)", ""]
    for part, text in sections:
        md += [f"## {titles[part]}", "", text]
    (out / "report.md").write_text("\n".join(md))
    print(f"wrote {out}/report.md, report.json, report.png in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
