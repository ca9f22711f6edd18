#!/usr/bin/env python3
"""What a `python` processor costs per frame, without its start-up: `framegate process` over a
short and a long 720p clip (street footage), with no processor and with a Python function doing
nothing (the frame handed over as numpy views and back), and the same for the peer's OpenCV
overlay on `frame.bgr()` against the peer pipe (ffmpeg → Python/OpenCV → ffmpeg) running the
very same drawing code. The marginal cost, (CPU of the long clip - CPU of the short one) /
(frames between them), leaves out what every run pays once (starting the interpreter, importing
numpy and OpenCV, the encoder's start): that is the per-frame figure the issue asks for. The
no-op runs twice: read-only (`draws = false`: the call alone) and drawing (`draws = true`: the
decoder still holds its output as a reference frame, so making it writable copies it, as it
does for every processor that draws).

Usage: scripts/bench-python.py [--rounds N] [--short N] [--long N] [--out DIR]
Writes DIR/python.md and DIR/python.json (default DIR: bench-out/).
"""

import argparse
import importlib.util
import json
import statistics
import time
from pathlib import Path

from benchlib import build_release, run_cpu
from benchlib import machine as describe_machine

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("bench_transcode", ROOT / "scripts" / "bench-transcode.py")
transcode = importlib.util.module_from_spec(spec)
spec.loader.exec_module(transcode)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--short", type=int, default=150, help="frames of the short clip")
    ap.add_argument("--long", type=int, default=600, help="frames of the long clip")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    framegate = build_release()
    config = out / "python-bench.toml"
    config.write_text(transcode.python_streams())
    w, h = 1280, 720
    clips = {}
    for n in (args.short, args.long):
        clip = out / f"clip-720p-{n}.mp4"
        transcode.make_clip(clip, w, h, n)
        clips[n] = (clip, transcode.count_frames(clip))
    dst = out / "python-result.mp4"

    def fg(clip, *extra):
        return [str(framegate), "process", "--input", str(clip), "--output", str(dst), *extra]

    def peer(clip):
        return ["bash", "-o", "pipefail", "-c",
                f"ffmpeg -v error -i {clip} -f rawvideo -pix_fmt bgr24 - | "
                f"{transcode.PYTHON} {ROOT}/scripts/peer/overlay_pipe.py {w} {h} cam | "
                f"ffmpeg -v error -f rawvideo -pix_fmt bgr24 -s {w}x{h} -r 25 -i - "
                f"-c:v libx264 -preset ultrafast -tune zerolatency -b:v 2000k -g 50 -bf 0 -y {dst}"]

    pipelines = {
        "framegate, no processor": lambda c: fg(c, "--hardware", "off"),
        "framegate + python, no-op (draws = false: the call alone)":
            lambda c: fg(c, "--config", str(config), "--stream", "noop-readonly"),
        "framegate + python, no-op (draws = true: the frame made writable, a copy)":
            lambda c: fg(c, "--config", str(config), "--stream", "noop"),
        "framegate + python, OpenCV overlay on bgr()": lambda c: fg(c, "--config", str(config), "--stream", "overlay"),
        "peer: ffmpeg → Python/OpenCV overlay → ffmpeg": peer,
    }
    cpu = {(k, n): [] for k in pipelines for n in clips}
    for _ in range(args.rounds):
        for k, make in pipelines.items():
            for n, (clip, _) in clips.items():
                cpu[(k, n)].append(run_cpu(make(clip)))
    dst.unlink(missing_ok=True)
    (s_clip, s_frames), (l_clip, l_frames) = clips[args.short], clips[args.long]
    rows = []
    for k in pipelines:
        short, long_ = statistics.median(cpu[(k, args.short)]), statistics.median(cpu[(k, args.long)])
        rows.append({
            "pipeline": k,
            "cpu_s_short": round(short, 3), "cpu_s_long": round(long_, 3),
            "marginal_ms_per_frame": round((long_ - short) / (l_frames - s_frames) * 1000, 3),
            "samples": {str(n): [round(x, 3) for x in cpu[(k, n)]] for n in clips},
        })
    base = rows[0]["marginal_ms_per_frame"]
    machine = describe_machine()
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}; 720p street "
        f"footage, {s_frames} and {l_frames} frames, median of {args.rounds} interleaved runs.",
        "",
        "| pipeline | CPU s, short clip | CPU s, long clip | marginal CPU ms/frame | over framegate alone |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['pipeline']} | {r['cpu_s_short']:.2f} | {r['cpu_s_long']:.2f} | "
                     f"{r['marginal_ms_per_frame']:.2f} | {r['marginal_ms_per_frame'] - base:+.2f} |")
    md = "\n".join(lines) + "\n"
    (out / "python.md").write_text(md)
    (out / "python.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(md)


if __name__ == "__main__":
    main()
