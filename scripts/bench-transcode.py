#!/usr/bin/env python3
"""Throughput benchmark: CPU seconds per frame of `framegate process` against a plain
gst-launch-1.0 transcode (decode -> x264enc ultrafast zerolatency -> MP4) of the same clips (the
floor), and against the peer baseline many teams use (ffmpeg decoding to raw BGR on a pipe, a
Python numpy/OpenCV loop drawing the same overlay, ffmpeg encoding with the same x264 settings:
scripts/peer/overlay_pipe.py), run side by side in one go and reported as ratios, since the
machine is shared and noisy.

Clips: real street footage (../shared/testdata/vtest.avi, upscaled to 720p and 1080p and
encoded to H.264 once); a moving test pattern where that file is absent.

The `python` processor is measured the same way: a function doing nothing (what a call costs:
the frame handed to Python as numpy views and back), and the peer's very drawing code
(scripts/peer/overlay_draw.py) run by framegate on `frame.bgr()` and written back with
`frame.set_bgr()`, against the same code in the peer's pipe.

Usage: scripts/bench-transcode.py [--rounds N] [--frames N] [--clips 720p,1080p] [--out DIR]
Writes DIR/transcode.md and DIR/transcode.json (default DIR: bench-out/).
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import build_release, run_cpu
from benchlib import machine as describe_machine

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / "target" / "pytools" / "bin" / "python"
FOOTAGE = ROOT.parent / "shared" / "testdata" / "vtest.avi"
ENCODER = "x264enc speed-preset=ultrafast tune=zerolatency bitrate=2000 key-int-max=50 bframes=0"


def gst(*pipeline):
    return ["gst-launch-1.0", "-q", *" ".join(pipeline).split()]


def make_clip(path, width, height, frames):
    if path.exists():
        return
    if FOOTAGE.exists():
        src = f"filesrc location={FOOTAGE} ! decodebin ! videorate ! video/x-raw,framerate=25/1"
    else:
        src = "videotestsrc pattern=ball ! video/x-raw,framerate=25/1"
    subprocess.run(
        gst(
            f"{src} ! videoscale ! video/x-raw,width={width},height={height} ! videoconvert !",
            f"video/x-raw,format=I420 ! identity eos-after={frames} !",
            f"x264enc speed-preset=fast bitrate={width * height // 200} key-int-max=50 ! mp4mux !",
            f"filesink location={path}",
        ),
        check=True,
    )


def count_frames(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    return int(out)


def python_streams():
    """A config whose streams run the benchmark's Python processors, with the x264 settings of
    the other rows."""
    peer = ROOT / "scripts" / "peer"
    text = f'[python]\nvenv = "{ROOT / "target" / "pytools"}"\n'
    for sid, file, draws in [("noop", "noop_processor.py", "true"),
                             ("noop-readonly", "noop_processor.py", "false"),
                             ("overlay", "overlay_processor.py", "true")]:
        text += (
            f'[[streams]]\nid = "{sid}"\nsource = "test://smpte"\n'
            f'processors = [ {{ kind = "python", file = "{peer / file}", budget_ms = 1000, '
            f'draws = {draws} }} ]\n'
            '[streams.decoder]\nhardware = "off"\n'
            '[streams.encoder]\nhardware = "off"\nbitrate_kbps = 2000\nkeyframe_interval = 50\n'
            'preset = "ultrafast"\n'
        )
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="runs of each command (median kept)")
    ap.add_argument("--frames", type=int, default=500, help="frames per clip")
    ap.add_argument("--clips", default="720p,1080p", help="which clips (720p, 1080p)")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    framegate = build_release()

    rows = []
    sizes = {"720p": (1280, 720), "1080p": (1920, 1080)}
    python_config = out / "python-bench.toml"
    python_config.write_text(python_streams())
    for name in args.clips.split(","):
        w, h = sizes[name]
        clip = out / f"clip-{name}-{args.frames}.mp4"
        make_clip(clip, w, h, args.frames)
        frames = count_frames(clip)
        dst = out / "result.mp4"
        commands = {
            "gst-launch (floor)": gst(
                f"filesrc location={clip} ! qtdemux ! h264parse ! avdec_h264 ! {ENCODER} !",
                f"h264parse ! mp4mux ! filesink location={dst}",
            ),
            "framegate, no processor": [
                str(framegate), "process", "--input", str(clip), "--output", str(dst),
                "--hardware", "off",
            ],
            "peer: ffmpeg → Python/OpenCV → ffmpeg": ["bash", "-o", "pipefail", "-c",
                f"ffmpeg -v error -i {clip} -f rawvideo -pix_fmt bgr24 - | "
                f"{PYTHON} {ROOT}/scripts/peer/overlay_pipe.py {w} {h} cam | "
                f"ffmpeg -v error -f rawvideo -pix_fmt bgr24 -s {w}x{h} -r 25 -i - "
                f"-c:v libx264 -preset ultrafast -tune zerolatency -b:v 2000k -g 50 -bf 0 "
                f"-y {dst}"],
            "framegate + overlay": [
                str(framegate), "process", "--input", str(clip), "--output", str(dst),
                "--hardware", "off", "--processor", "overlay",
            ],
            "framegate + python, no-op": [
                str(framegate), "process", "--input", str(clip), "--output", str(dst),
                "--config", str(python_config), "--stream", "noop",
            ],
            "framegate + python, the peer's OpenCV overlay on bgr()": [
                str(framegate), "process", "--input", str(clip), "--output", str(dst),
                "--config", str(python_config), "--stream", "overlay",
            ],
        }
        cpu = {k: [] for k in commands}
        # Interleave the commands so that load from elsewhere hits them alike.
        for _ in range(args.rounds):
            for k, cmd in commands.items():
                cpu[k].append(run_cpu(cmd))
        base = statistics.median(cpu["gst-launch (floor)"])
        for k, samples in cpu.items():
            med = statistics.median(samples)
            rows.append({
                "clip": name, "frames": frames, "pipeline": k,
                "cpu_ms_per_frame": round(med / frames * 1000, 3),
                "ratio_to_floor": round(med / base, 3),
                "samples_cpu_s": [round(s, 3) for s in samples],
            })
        dst.unlink(missing_ok=True)

    machine = describe_machine()
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}.",
        f"Median of {args.rounds} interleaved runs; clip source: "
        f"{'vtest.avi street footage' if FOOTAGE.exists() else 'videotestsrc ball'}.",
        "",
        "| clip | frames | pipeline | CPU ms/frame | ratio to gst-launch |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['frames']} | {r['pipeline']} | {r['cpu_ms_per_frame']:.2f} | "
            f"{r['ratio_to_floor']:.3f} |"
        )
    md = "\n".join(lines) + "\n"
    (out / "transcode.md").write_text(md)
    (out / "transcode.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print(md)


if __name__ == "__main__":
    if not shutil.which("gst-launch-1.0"):
        sys.exit("gst-launch-1.0 is missing: run scripts/setup-debian.sh")
    main()
