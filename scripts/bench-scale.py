#!/usr/bin/env python3
"""Scale benchmark: how many cameras one framegate keeps in real time on this machine, paying
only for what changes pixels. Cameras are pre-encoded clips of real footage (the OpenCV street
scene, scaled to 720p or 1080p and brought to 25 fps by blending, x264 `fast`, a key frame
every 2 s, no B-frames, as an IP camera sends), relayed by nginx-rtmp from `ffmpeg -re -c copy`
publishers (at most 8; streams share them round robin: nginx fans them out).

Rows, each a search for the most streams in real time (doubling, then bisecting):
- transcode + overlay (`video = "encode"`): every frame decoded, drawn on, encoded (x264
  ultrafast);
- pass-through, no processor (`video = "auto"`): the camera's H.264 goes out as it is, every
  frame is still decoded (for the browsers' pictures);
- pass-through + detection (`detect` with the shared CenterNet model): every frame is decoded
  for the detector, which takes what it can (its own capacity, reported);
- pass-through, key frames only (`decode = "keyframes"`): the same, decoding key frames only;
- the peer baseline, per stream `ffmpeg` (decode to raw BGR) → Python/OpenCV drawing what the
  overlay draws (scripts/peer/overlay_pipe.py) → `ffmpeg` (x264 ultrafast), the pipeline many
  teams run: three processes a camera, one thread each once the streams fill the cores (as
  framegate's codecs take);
- the plain transcode, concurrent: per stream one `gst-launch-1.0` reading the relay (rtmpsrc,
  flvdemux, h264parse, avdec_h264, x264enc ultrafast zerolatency 2000 kbit/s, one thread each
  once the streams fill the cores), no drawing: the codecs alone, with every cost that many
  codecs sharing the cores add (caches, scheduling, the cameras' key frames), measured the way
  framegate is.
In the same run, the floors: a plain `gst-launch-1.0` transcode (decode + x264 ultrafast) and
a plain decode of the clip, each CPU per frame and the streams that would fit on this
machine's cores (the codec-bound limits), and the ratio of each row to its limit.

Each try is measured in the steady state: after every stream is live and has sent two GOPs,
and no stream decodes faster than the camera sends (the relay's backlog and the start of many
streams at once make them catch up for a while). Real time: every stream's output at 97% of
the camera's rate or more; for the rows that decode every frame, decoded frames at 97% too,
with under 1% skipped by the decoder's queue or (without a detector, which takes the newest
frame when it is free) dropped before processing; for key frames only, the key frames of the
camera decoded.

Usage: scripts/bench-scale.py [--size 1280x720] [--seconds 10] [--max 128]
                              [--rows transcode,decode,passthrough,keyframes,peer]
       scripts/bench-scale.py --rows transcode,plain   (framegate against the concurrent plain transcode)
       scripts/bench-scale.py --quick          (640x360, 1 stream, 4 s: proves it runs, CI)
Writes bench-out/scale-passthrough.md and .json.
"""

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, api, build_release, cpu_seconds, most_that_pass, free_port, nginx, wait_port

FOOTAGE = ROOT.parent / "shared" / "testdata" / "vtest.avi"
MODEL = ROOT / "target" / "assets" / "models" / "centernet.onnx"
PYTHON = ROOT / "target" / "pytools" / "bin" / "python"
FPS = 25
GOP = 50
PUBLISHERS = 8
# The steady state a try waits for: this many GOPs sent by every stream, then no stream
# decoding faster than the camera over a window of this many seconds. `--quick` halves both
# (its numbers prove only that every row runs).
WARMUP = {"gops": 2, "window_s": 2.0}
ROWS = {
    "transcode": ('video = "encode"\nprocessors = [ { kind = "overlay" } ]\n', "every"),
    "decode": ('video = "auto"\n', "every"),
    "passthrough": ('video = "auto"\nprocessors = [ { kind = "detect", model = "coco" } ]\n',
                    "every"),
    "keyframes": ('video = "auto"\ndecode = "keyframes"\n'
                  'processors = [ { kind = "detect", model = "coco" } ]\n', "keys"),
}



def clip(out, size, secs):
    """The camera clip of this size, made once (real footage, 25 fps by blending)."""
    w, h = size.split("x")
    path = out / f"camera-{size}-{secs}s.mp4"
    if not path.exists():
        bitrate = "3000k" if int(h) <= 720 else "5000k"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-t", str(secs), "-i", str(FOOTAGE), "-vf",
             f"scale={w}:{h},framerate=fps={FPS}", "-c:v", "libx264", "-preset", "fast",
             "-profile:v", "main", "-bf", "0", "-g", str(GOP), "-b:v", bitrate,
             "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def floor(cmd, frames):
    """CPU milliseconds per frame of a gst-launch pipeline over the clip."""
    t0 = os.times()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t1 = os.times()
    return ((t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)) \
        / frames * 1000



def measure(exe, row, streams, rtmp, seconds):
    """One try: `streams` streams of the row's kind; (real time?, summary)."""
    body, decodes = ROWS[row]
    http = free_port()
    cfg = f'[server]\nhttp = "127.0.0.1:{http}"\nrtsp_port = 0\nsummary_interval_s = 0\n'
    if "detect" in body:
        cfg += f'\n[[models]]\nid = "coco"\npath = "{MODEL}"\nformat = "centernet"\nthreads = 1\n'
    for i in range(streams):
        cfg += (f'\n[[streams]]\nid = "cam{i}"\n'
                f'source = "rtmp://127.0.0.1:{rtmp}/live/cam{i % PUBLISHERS}"\naudio = "off"\n'
                + body)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.toml"
        path.write_text(cfg)
        fg = subprocess.Popen([str(exe), "run", "--config", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(http)
            deadline = time.time() + 60
            while time.time() < deadline:
                ss = api(http, "/api/streams")
                if all(s["state"] == "live" and s["frames"]["encoded"] + s["frames"]["passed"] > WARMUP["gops"] * GOP
                       for s in ss):
                    break
                time.sleep(0.5)
            settle(http, deadline)
            before, m0 = api(http, "/api/streams"), api(http, "/api/models")
            t0, c0 = time.time(), cpu_seconds(fg.pid)
            time.sleep(seconds)
            after, m1 = api(http, "/api/streams"), api(http, "/api/models")
            t1, c1 = time.time(), cpu_seconds(fg.pid)
        finally:
            fg.terminate()
            fg.wait(20)
    wall = t1 - t0
    b = {s["id"]: s for s in before}
    outs, decoded, lost = [], [], 0
    for s in after:
        p = b[s["id"]]
        d = lambda *k: _get(s, k) - _get(p, k)  # noqa: E731
        outs.append((d("frames", "encoded") + d("frames", "passed")) / wall)
        decoded.append(d("frames", "decoded") / wall)
        # A detector takes the newest frame when it is free (its own capacity): frames it
        # skipped are not lost to the stream; the decoder's skips and the encoder's are.
        lost += (0 if "detect" in body else d("dropped", "ingest")) \
            + (d("video", "skipped_units") if decodes == "every" else 0)
    frames = sum(decoded) * wall
    if decodes == "every":
        ok = all(o >= 0.97 * FPS for o in outs) and all(x >= 0.97 * FPS for x in decoded) \
            and lost <= 0.01 * max(frames, 1)
    else:
        # Every key frame of the window but one (the window's ends cut GOPs).
        keys = max(1, int(wall * FPS / GOP) - 1)
        ok = all(o >= 0.97 * FPS for o in outs) and all(x * wall >= keys for x in decoded)
    inferences = sum(_get(m, ("inputs",)) for m in m1) - sum(_get(m, ("inputs",)) for m in m0)
    cores = (c1 - c0) / wall
    return ok, {
        "streams": streams, "real_time": ok, "cores": round(cores, 3),
        "cpu_ms_per_output_frame": round(cores * 1000 / max(sum(outs), 1e-9), 3),
        "min_fps_out": round(min(outs), 2), "min_fps_decoded": round(min(decoded), 2),
        "lost": lost, "inferences_per_s": round(inferences / wall, 1),
    }


def measure_peer(streams, rtmp, seconds, size):
    """One try of the peer baseline: `streams` ffmpeg → Python → ffmpeg pipelines, each encoder
    writing its progress to a file; (real time?, summary) as `measure`."""
    w, h = size.split("x")
    one = ["-threads", "1"] if streams >= os.cpu_count() else []
    procs, progress = [], []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i in range(streams):
                prog = Path(tmp) / f"peer{i}.progress"
                dec = subprocess.Popen(
                    ["ffmpeg", "-v", "error", "-fflags", "nobuffer", *one,
                     "-i", f"rtmp://127.0.0.1:{rtmp}/live/cam{i % PUBLISHERS}", "-an",
                     "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                draw = subprocess.Popen(
                    [str(PYTHON), str(ROOT / "scripts" / "peer" / "overlay_pipe.py"), w, h, f"cam{i}"],
                    stdin=dec.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                dec.stdout.close()
                enc = subprocess.Popen(
                    ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", size,
                     "-r", str(FPS), "-i", "-", "-c:v", "libx264", *one, "-preset", "ultrafast",
                     "-tune", "zerolatency", "-b:v", "2000k", "-g", str(GOP), "-bf", "0",
                     "-progress", str(prog), "-stats_period", "0.1", "-f", "null", "-"],
                    stdin=draw.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                draw.stdout.close()
                procs += [dec, draw, enc]
                progress.append(prog)
            return _steady_rate(procs, progress, _progress_frames, streams, seconds)
        finally:
            for p in procs:
                p.kill()
                p.wait(10)


def measure_plain(streams, rtmp, seconds):
    """One try of the plain concurrent transcode: `streams` gst-launch pipelines, each counting
    its encoded frames with fpsdisplaysink into a file; (real time?, summary) as `measure`."""
    one = "max-threads=1" if streams >= os.cpu_count() else ""
    threads = "threads=1" if streams >= os.cpu_count() else ""
    procs, progress = [], []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i in range(streams):
                prog = Path(tmp) / f"plain{i}.log"
                cmd = (f"rtmpsrc location=rtmp://127.0.0.1:{rtmp}/live/cam{i % PUBLISHERS} "
                       f"! flvdemux ! h264parse ! avdec_h264 {one} ! x264enc "
                       f"speed-preset=ultrafast tune=zerolatency bitrate=2000 key-int-max={GOP} "
                       f"bframes=0 {threads} ! fpsdisplaysink video-sink=fakesink "
                       "text-overlay=false sync=false fps-update-interval=100")
                with open(prog, "w") as log:
                    procs.append(subprocess.Popen(["gst-launch-1.0", "-v"] + cmd.split(),
                                                  stdin=subprocess.DEVNULL, stdout=log,
                                                  stderr=subprocess.DEVNULL))
                progress.append(prog)
            return _steady_rate(procs, progress, _rendered, streams, seconds)
        finally:
            for p in procs:
                p.kill()
                p.wait(10)


def _steady_rate(procs, progress, count, streams, seconds):
    """Waits for every pipeline's first GOPs (`WARMUP`) and its steady state (none ahead of the
    camera), then measures each one's rate between two fresh reports of its own, and the
    processes' cores; (real time?, summary) as `measure`."""
    frames = lambda: [count(p) for p in progress]  # noqa: E731
    deadline = time.time() + 60
    while time.time() < deadline and min(frames()) <= WARMUP["gops"] * GOP:
        time.sleep(0.5)
    last = frames()
    window = WARMUP["window_s"]
    while time.time() < deadline:
        time.sleep(window)
        now = frames()
        if all((b - a) / window <= 1.1 * FPS for a, b in zip(last, now)):
            break
        last = now
    c0, t0 = sum(cpu_seconds(p.pid) for p in procs), time.time()
    marks0 = _fresh_progress(progress, count)
    time.sleep(seconds)
    marks1 = _fresh_progress(progress, count)
    c1, t1 = sum(cpu_seconds(p.pid) for p in procs), time.time()
    wall = t1 - t0
    # Each pipeline's rate between two fresh reports of its own (the moment a count changes
    # is when it was true).
    outs = [(f1 - f0) / max(u1 - u0, 1e-9) for (f0, u0), (f1, u1) in zip(marks0, marks1)]
    ok = all(o >= 0.97 * FPS for o in outs)
    cores = (c1 - c0) / wall
    return ok, {
        "streams": streams, "real_time": ok, "cores": round(cores, 3),
        "cpu_ms_per_output_frame": round(cores * 1000 / max(sum(outs), 1e-9), 3),
        "min_fps_out": round(min(outs), 2), "min_fps_decoded": round(min(outs), 2),
        "lost": 0, "inferences_per_s": 0,
    }


def _rendered(path):
    """The last count of frames an fpsdisplaysink reports in a `gst-launch-1.0 -v` log."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    at = text.rfind("rendered: ")
    if at < 0:
        return 0
    digits = text[at + 10:at + 30].split(",", 1)[0]
    return int(digits) if digits.isdigit() else 0


def _fresh_progress(paths, count=None, limit=1.0):
    """For each progress file, (frames, time) at the moment its count next changes (polled
    every 10 ms, for `limit` seconds at most; then the count as it is)."""
    count = count or _progress_frames
    start = [count(p) for p in paths]
    marks = [None] * len(paths)
    deadline = time.time() + limit
    while time.time() < deadline and None in marks:
        for i, p in enumerate(paths):
            if marks[i] is None and (n := count(p)) != start[i]:
                marks[i] = (n, time.time())
        time.sleep(0.01)
    return [m or (start[i], time.time()) for i, m in enumerate(marks)]


def _progress_frames(path):
    """The last `frame=` an ffmpeg `-progress` file reports (0 before the first)."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    found = [line for line in text.splitlines() if line.startswith("frame=")]
    return int(found[-1].split("=", 1)[1]) if found else 0


def settle(http, deadline):
    """Waits until no stream decodes faster than the camera sends (over `window` seconds): a
    relay sends its backlog on connect, and streams that start together catch up for a while;
    what is measured is the steady state. Gives up at `deadline`."""
    window = WARMUP["window_s"]
    last = {s["id"]: _get(s, ("frames", "decoded")) for s in api(http, "/api/streams")}
    while time.time() < deadline:
        time.sleep(window)
        now = {s["id"]: _get(s, ("frames", "decoded")) for s in api(http, "/api/streams")}
        if all((now[k] - last.get(k, 0)) / window <= 1.1 * FPS for k in now):
            return
        last = now


def _get(doc, keys):
    for k in keys:
        doc = doc.get(k, 0) if isinstance(doc, dict) else 0
    return doc or 0


def search(exe, row, rtmp, seconds, most, size):
    tried = {}

    def ok(n):
        if n not in tried:
            tried[n] = (measure_peer(n, rtmp, seconds, size) if row == "peer"
                        else measure_plain(n, rtmp, seconds) if row == "plain"
                        else measure(exe, row, n, rtmp, seconds))[1]
            t = tried[n]
            print(f"{row}: {n} streams: {'real time' if t['real_time'] else 'behind'} "
                  f"({t['cores']} cores, out >= {t['min_fps_out']}, decoded >= "
                  f"{t['min_fps_decoded']} fps)", flush=True)
        return tried[n]["real_time"]

    good, capped = most_that_pass(ok, most)
    return {"row": row, "most": good, "capped": capped, "at_most": tried.get(good),
            "runs": [tried[k] for k in sorted(tried)]}


def machine():
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max", type=int, default=128)
    ap.add_argument("--rows", default="transcode,plain,decode,passthrough,keyframes,peer")
    ap.add_argument("--quick", action="store_true", help="one stream, 4 s a row (CI)")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    secs = 60
    if args.quick:
        args.size, args.seconds, args.max, secs = "640x360", 4, 1, 12
        WARMUP.update(gops=1, window_s=1.0)
    exe = build_release()
    camera = clip(out, args.size, secs)
    frames = int(subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_packets", "-of", "csv=p=0", str(camera)],
        check=True, capture_output=True, text=True).stdout.strip())
    src = f"filesrc location={camera} ! qtdemux ! h264parse ! avdec_h264"
    # The cheaper of x264's own threads and one thread (what framegate takes with many
    # encoders): the codec-bound limit is what the cheapest plain transcode allows.
    transcode_each = {
        threads: floor(["gst-launch-1.0", "-q"] + (
            src + f" ! x264enc speed-preset=ultrafast tune=zerolatency bitrate=2000 {opt} "
            "! fakesink").split(), frames)
        for threads, opt in (("auto", ""), ("one", "threads=1"))}
    transcode_ms = min(transcode_each.values())
    decode_ms = floor(["gst-launch-1.0", "-q"] + (src + " ! fakesink").split(), frames)
    cores = os.cpu_count()
    limits = {"transcode": cores * 1000 / (transcode_ms * FPS),
              "decode": cores * 1000 / (decode_ms * FPS),
              "passthrough": cores * 1000 / (decode_ms * FPS),
              "keyframes": cores * 1000 / (decode_ms * FPS / GOP),
              "peer": cores * 1000 / (transcode_ms * FPS),
              "plain": cores * 1000 / (transcode_ms * FPS)}
    threads = ", ".join(f"{k} {v:.2f}" for k, v in transcode_each.items())
    print(f"floors: transcode {transcode_ms:.2f} ms/frame (x264 threads: {threads}) "
          f"(limit {limits['transcode']:.1f} streams), decode {decode_ms:.2f} ms/frame (limit {limits['passthrough']:.1f})",
          flush=True)

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        rtmp = free_port()
        server = nginx(Path(tmp), rtmp)
        # Independent cameras: their key frames fall at different moments (each publisher
        # starts a GOP / PUBLISHERS later than the one before), not all at once.
        publishers, start = [], time.time()
        for k in range(PUBLISHERS):
            time.sleep(max(0.0, start + k * GOP / FPS / PUBLISHERS - time.time()))
            publishers.append(subprocess.Popen(
                ["ffmpeg", "-v", "error", "-re", "-stream_loop", "-1", "-i", str(camera), "-c",
                 "copy", "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/cam{k}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            p0 = sum(cpu_seconds(p.pid) for p in publishers) + cpu_seconds(server.pid)
            t0 = time.time()
            for row in args.rows.split(","):
                results.append(search(exe, row, rtmp, args.seconds, args.max, args.size))
            relay_cores = (sum(cpu_seconds(p.pid) for p in publishers)
                           + cpu_seconds(server.pid) - p0) / (time.time() - t0)
        finally:
            for p in publishers + [server]:
                p.terminate()
                p.wait(10)

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    names = {"transcode": "transcode + overlay", "decode": "pass-through, every frame decoded, no processor",
             "passthrough": "pass-through + detection, every frame decoded",
             "keyframes": "pass-through + detection, key frames decoded",
             "peer": "peer baseline: ffmpeg → Python/OpenCV overlay → ffmpeg",
             "plain": "plain transcode (gst-launch), concurrent, no drawing"}
    lines = [
        f"Measured {when} on {machine()}: {args.size}@{FPS} cameras (real footage, GOP {GOP}), "
        f"{args.seconds:.0f} s per try, relayed by nginx-rtmp ({PUBLISHERS} publishers, "
        f"{relay_cores:.2f} cores on average, same machine). Floors in the same run: plain "
        f"transcode {transcode_ms:.2f} ms/frame (the cheaper of x264's own threads, "
        f"{transcode_each['auto']:.2f}, and one thread, {transcode_each['one']:.2f}), plain "
        f"decode {decode_ms:.2f} ms/frame.",
        "",
        "| row | streams in real time | codec-bound limit | ratio | framegate cores there | "
        "CPU ms per output frame | detector inferences/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        a = r["at_most"] or {}
        limit = limits[r["row"]]
        lines.append(
            f"| {names[r['row']]} | {r['most']}{'+' if r['capped'] else ''} | {limit:.1f} | "
            f"{r['most'] / limit:.2f} | {a.get('cores', '—')} | {a.get('cpu_ms_per_output_frame', '—')} | "
            f"{a.get('inferences_per_s', '—')} |")
    done = {r["row"]: r for r in results}
    if "transcode" in done and "plain" in done and done["plain"]["most"]:
        lines += ["", f"framegate's transcode + overlay against the plain transcode run the same "
                  f"way: {done['transcode']['most']} of {done['plain']['most']} streams "
                  f"({done['transcode']['most'] / done['plain']['most']:.2f})."]
    md = "\n".join(lines) + "\n"
    (out / "scale-passthrough.md").write_text(md)
    (out / "scale-passthrough.json").write_text(json.dumps(
        {"machine": machine(), "size": args.size,
         "floors_ms": {"transcode": transcode_ms, "transcode_by_threads": transcode_each,
                       "decode": decode_ms}, "limits": limits, "relay_cores": relay_cores, "rows": results},
        indent=2))
    print(md)


if __name__ == "__main__":
    main()
