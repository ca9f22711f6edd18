#!/usr/bin/env python3
"""Watermark benchmark: framegate's watermark against the DWT-DCT and DWT-DCT-SVD methods of
the `invisible-watermark` Python package, on the same 1280x720@25 clips, through the same x264
(ultrafast, zerolatency, CBR, key frame every 2 s) at 500 kbit/s, 1 and 2 Mbit/s.

Reports, per clip and bitrate: the share of 2 s and 1 s windows and of single frames whose ID
is read, wrong IDs, luma PSNR of the marked frames, and embed and read time per frame; for
framegate also downscaling, a second encode, cropping and a frame-rate change, and unmarked
video (which must give nothing).

Noisy footage (`--noisy-seconds`, 0 skips it; `--only-noisy` runs that part alone): scenes made
by scripts/wm_scenes.py from real photos and texture (grass, gravel beside a dark star field; a
pan, a hold and a zoom-in) with Gaussian sensor noise of sigma 0 to 4 on 8-bit luma, a gravel
texture scene and a star field alone; per clip and noise level, at 500 kbit/s and 1 Mbit/s: the
2 s windows read, wrong IDs, luma PSNR, SSIM (luma, marked against unmarked) and the mark's
flicker (RMS change of the mark from one frame to the next, luma levels).

Usage: scripts/bench-watermark.py [--seconds 40] [--peer-frames 25] [--noisy-seconds 24]
                                  [--only-noisy [--scenes mixed-3,texture-2.5]] [--out DIR]
Writes DIR/watermark.md and DIR/watermark.json (default DIR: bench-out/).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT, build_release

PYTHON = ROOT / "target" / "pytools" / "bin" / "python"
SHARED = ROOT.parent / "shared" / "testdata"
KEY = "benchmark secret"
ID = "CAM0042"
W, H = 1280, 720
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "50", "-bf", "0"]


def cbr(kbps):
    k = f"{kbps}k"
    return X264 + ["-b:v", k, "-minrate", k, "-maxrate", k, "-bufsize", k,
                   "-x264-params", "nal-hrd=cbr"]


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


def clips(out, seconds, only=None):
    photo = SHARED / "horses.jpg"
    # A camera panning to and fro (up to 64 px/s) and bobbing: moving all along.
    pan = "scale=2560:-2,crop=1280:720:'(iw-1280)*(1-cos(t/10))/2':'{y}+40*sin(t)'"
    made = {}
    for name, vf, src in [
        ("pan A (horses, upper band)", pan.format(y=100), ["-loop", "1", "-i", photo]),
        ("pan B (horses, centre)", pan.format(y="(ih-720)/2"), ["-loop", "1", "-i", photo]),
        ("street (vtest, still camera)", "scale=1280:720,fps=25", ["-stream_loop", "-1", "-i",
                                                                    SHARED / "vtest.avi"]),
    ]:
        path = out / f"wm-clip-{len(made)}-{seconds}s.mp4"
        if only is not None and only != name:
            made[name] = None
            continue
        if not path.exists():
            ffmpeg(*src, "-vf", vf, "-t", seconds, "-r", 25, "-pix_fmt", "yuv420p",
                   "-c:v", "libx264", "-preset", "fast", "-crf", 16, path)
        made[name] = path
    return {k: v for k, v in made.items() if v is not None}


def y4m_frames(path):
    """Luma planes and full I420 frames of a Y4M file."""
    import numpy as np
    data = open(path, "rb").read()
    at = data.index(b"\n") + 1
    size = W * H * 3 // 2
    frames = []
    while at < len(data):
        at = data.index(b"\n", at) + 1
        frames.append(np.frombuffer(data[at:at + size], np.uint8))
        at += size
    return frames


NOISY = [("mixed", 0), ("mixed", 1), ("mixed", 2), ("mixed", 2.5), ("mixed", 3), ("mixed", 4),
         ("texture", 2.5), ("stars", 2.5)]
SCENES = {"mixed": "grass, gravel, star field: pan, hold, zoom", "texture": "grass and gravel",
          "stars": "star field"}


def y4m_lumas(path):
    """The luma planes of a Y4M file, one at a time."""
    import numpy as np
    size = W * H * 3 // 2
    with open(path, "rb") as f:
        f.readline()
        while f.readline().startswith(b"FRAME"):
            data = f.read(size)
            if len(data) < size:
                return
            yield np.frombuffer(data, np.uint8, W * H).reshape(H, W)


def ssim_luma(a, b):
    """SSIM of the luma of two Y4M files (ffmpeg's filter)."""
    r = subprocess.run(["ffmpeg", "-v", "info", "-i", str(a), "-i", str(b), "-lavfi", "ssim", "-f",
                        "null", "-"], capture_output=True, text=True, check=True)
    line = next(x for x in r.stderr.splitlines() if "SSIM Y:" in x)
    return float(line.split("SSIM Y:")[1].split()[0])


def noisy(exe, out, seconds, bitrates, cfg, only=None):
    """The noisy scenes: one row per clip and noise level (those named `scene-sigma` in `only`,
    when given)."""
    import numpy as np
    rows = []
    for scene, sigma in NOISY:
        if only and f"{scene}-{sigma}" not in only:
            continue
        clip = out / f"wm-noisy-{scene}-{sigma}-{seconds}s.mp4"
        if not clip.exists():
            gen = subprocess.Popen([str(PYTHON), str(ROOT / "scripts" / "wm_scenes.py"), "--seconds",
                                    str(seconds), "--noise", str(sigma), "--scene", scene],
                                   stdout=subprocess.PIPE)
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "yuv4mpegpipe", "-i", "-", "-c:v",
                            "libx264", "-preset", "ultrafast", "-crf", "8", "-pix_fmt", "yuv420p",
                            str(clip)], stdin=gen.stdout, check=True)
            gen.wait()
        marked, clean = out / "wm-noisy-marked.y4m", out / "wm-noisy-clean.y4m"
        subprocess.run([str(exe), "process", "--input", str(clip), "--output", str(marked),
                        "--config", str(cfg), "--stream", "cam"], check=True, capture_output=True)
        subprocess.run([str(exe), "process", "--input", str(clip), "--output", str(clean)],
                       check=True, capture_output=True)
        psnr, flicker, last = [], [], None
        for a, b in zip(y4m_lumas(marked), y4m_lumas(clean)):
            d = a.astype(np.float32) - b
            psnr.append(10 * np.log10(255 ** 2 / max(float((d * d).mean()), 1e-9)))
            if last is not None:
                flicker.append(float(np.sqrt(((d - last) ** 2).mean())))
            last = d
        row = {"scene": scene, "noise": sigma, "frames": len(psnr),
               "psnr_min": round(min(psnr), 2), "psnr_mean": round(float(np.mean(psnr)), 2),
               "ssim": round(ssim_luma(marked, clean), 5),
               "flicker_mean": round(float(np.mean(flicker)), 3),
               "flicker_max": round(max(flicker), 3), "read": {}}
        for kbps in bitrates:
            enc = out / f"wm-noisy-{kbps}.mp4"
            ffmpeg("-i", marked, *cbr(kbps), enc)
            row["read"][kbps] = read(exe, enc, 2)
            row["read"][kbps]["confidence"] = [round(c, 2) for _, c in confidences(exe, enc)]
        unmarked = out / "wm-noisy-clean.mp4"
        ffmpeg("-i", clean, *cbr(min(bitrates)), unmarked)
        row["unmarked_ids"] = read(exe, unmarked, 2)["wrong"]
        marked.unlink()
        clean.unlink()
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def noisy_table(rows, bitrates):
    pct = lambda v: f"{v * 100:.0f}%"  # noqa: E731
    lines = ["| scene | noise sigma | " + " | ".join(f"2 s windows read at {k} kbit/s" for k in bitrates)
             + f" | lowest confidence at {bitrates[0]} kbit/s | wrong IDs | unmarked: IDs | "
             "luma PSNR min / mean | SSIM (luma) | flicker mean / max (levels) |",
             "|---|---|" + "---|" * len(bitrates) + "---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {SCENES[r['scene']]} | {r['noise']} | "
            + " | ".join(f"{pct(r['read'][k]['found'])} of {r['read'][k]['windows']}" for k in bitrates)
            + f" | {min(r['read'][bitrates[0]].get('confidence') or [0])} "
            f"| {sum(r['read'][k]['wrong'] for k in bitrates)} | {r['unmarked_ids']} | "
            f"{r['psnr_min']} / {r['psnr_mean']} dB | {r['ssim']} | "
            f"{r['flicker_mean']} / {r['flicker_max']} |")
    return lines


def read(exe, path, window):
    r = subprocess.run([str(exe), "watermark", "read", str(path), "--window",
                        str(window), "--json"], capture_output=True, text=True, check=True,
                       env={**os.environ, "FRAMEGATE_WATERMARK_KEY": KEY})
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    # A partial last window is not counted.
    full = [x for x in rows if x["frames"] >= 0.9 * 25 * window] or rows
    return {"found": sum(x["id"] == ID for x in full) / max(len(full), 1),
            "wrong": sum(x["id"] not in (None, ID) for x in rows), "windows": len(full)}


def confidences(exe, path, key=KEY):
    """Per full 2 s window: (ID, confidence)."""
    r = subprocess.run([str(exe), "watermark", "read", str(path), "--window", "2",
                        "--json"], capture_output=True, text=True, check=True,
                       env={**os.environ, "FRAMEGATE_WATERMARK_KEY": key})
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    return [(x["id"], x["confidence"]) for x in rows if x["frames"] >= 45]


def long_run(exe, out, seconds, cfg):
    """The hardest clip (pan B) for many windows at 500 kbit/s: the share read, the spread of
    confidences, and what unmarked video and a wrong key give over as many windows."""
    clip = clips(out, seconds, only="pan B (horses, centre)")["pan B (horses, centre)"]
    marked = out / "wm-long.y4m"
    subprocess.run([str(exe), "process", "--input", str(clip), "--output", str(marked),
                    "--config", str(cfg), "--stream", "cam"], check=True, capture_output=True)
    enc = out / "wm-long-500.mp4"
    ffmpeg("-i", marked, *cbr(500), enc)
    marked.unlink()
    found = confidences(exe, enc)
    c = sorted(v for _, v in found)
    noise = confidences(exe, clip) + confidences(exe, enc, "wrong key")
    return {"seconds": seconds, "windows": len(found), "read": sum(i == ID for i, _ in found),
            "wrong": sum(i not in (None, ID) for i, _ in found),
            "confidence_min": round(c[0], 3), "confidence_p5": round(c[len(c) // 20], 3),
            "confidence_median": round(c[len(c) // 2], 3), "noise_windows": len(noise),
            "noise_ids": sum(i is not None for i, _ in noise),
            "noise_mean": round(statistics.mean(v for _, v in noise), 3),
            "noise_sd": round(statistics.pstdev(v for _, v in noise), 3),
            "noise_max": round(max(v for _, v in noise), 3)}


PEER = r"""
import sys, types, json, time
sys.modules.setdefault("torch", types.ModuleType("torch"))  # only its learned method needs torch
import numpy as np, cv2
from imwatermark import WatermarkEncoder, WatermarkDecoder
mode, method, src, dst, n, w, h = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
size = w * h * 3 // 2
data = open(src, "rb").read()
at = data.index(b"\n") + 1
frames = []
while at < len(data) and len(frames) < n:
    at = data.index(b"\n", at) + 1
    frames.append(np.frombuffer(data[at:at + size], np.uint8).reshape(h * 3 // 2, w)); at += size
if mode == "embed":
    enc = WatermarkEncoder(); enc.set_watermark("bytes", b"CAM0042")
    out = open(dst, "wb"); out.write(data[:data.index(b"\n") + 1]); t = time.perf_counter(); luma = []
    for f in frames:
        bgr = cv2.cvtColor(f, cv2.COLOR_YUV2BGR_I420)
        m = enc.encode(bgr, method)
        yuv = cv2.cvtColor(m, cv2.COLOR_BGR2YUV_I420)
        luma.append(cv2.PSNR(yuv[:h], f[:h]))
        out.write(b"FRAME\n" + yuv.tobytes())
    print(json.dumps({"embed_ms": (time.perf_counter() - t) / len(frames) * 1000, "psnr": min(luma)}))
else:
    dec = WatermarkDecoder("bytes", 56); t = time.perf_counter(); ok = 0
    for f in frames:
        ok += dec.decode(cv2.cvtColor(f, cv2.COLOR_YUV2BGR_I420), method) == b"CAM0042"
    print(json.dumps({"read_ms": (time.perf_counter() - t) / len(frames) * 1000, "found": ok / len(frames)}))
"""


def peer(method, src, dst, frames, mode):
    r = subprocess.run([str(PYTHON), "-c", PEER, mode, method, str(src), str(dst), str(frames),
                        str(W), str(H)], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=40)
    ap.add_argument("--peer-frames", type=int, default=25)
    ap.add_argument("--bitrates", default="500,1000,2000")
    ap.add_argument("--long-seconds", type=int, default=200,
                    help="pan B alone at 500 kbit/s for this long (0: skip)")
    ap.add_argument("--noisy-seconds", type=int, default=24,
                    help="length of each noisy scene (0: skip them)")
    ap.add_argument("--only-noisy", action="store_true", help="the noisy scenes alone")
    ap.add_argument("--scenes", default="",
                    help="with --only-noisy: these scenes alone, e.g. mixed-3,texture-2.5")
    ap.add_argument("--out", default=str(ROOT / "bench-out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exe = build_release()
    # The embedding's own cost, in one thread, with the processor's code (examples/).
    subprocess.run(["cargo", "build", "--release", "-q", "--example", "watermark_cost"],
                   cwd=ROOT, check=True)
    cost_exe = ROOT / "target" / "release" / "examples" / "watermark_cost"
    bitrates = [int(b) for b in args.bitrates.split(",")]
    if args.only_noisy:
        cfg = out / "wm.toml"
        cfg.write_text(f'[[streams]]\nid = "cam"\nsource = "test://ball"\nprocessors = [ '
                       f'{{ kind = "watermark", id = "{ID}", key = "{KEY}" }} ]\n')
        only = {s for s in args.scenes.split(",") if s}
        rows = noisy(exe, out, args.noisy_seconds or 24, [500, 1000], cfg, only)
        md = "\n".join(noisy_table(rows, [500, 1000])) + "\n"
        (out / "watermark-noisy.md").write_text(md)
        (out / "watermark-noisy.json").write_text(json.dumps(rows, indent=2))
        print(md)
        return
    import numpy as np
    results = []
    for name, clip in clips(out, args.seconds).items():
        cfg = out / "wm.toml"
        cfg.write_text(f'[[streams]]\nid = "cam"\nsource = "test://ball"\nprocessors = [ '
                       f'{{ kind = "watermark", id = "{ID}", key = "{KEY}" }} ]\n')
        clean = out / "wm-clean.y4m"
        marked = out / "wm-marked.y4m"
        subprocess.run([str(exe), "process", "--input", str(clip), "--output", str(marked),
                        "--config", str(cfg), "--stream", "cam"], check=True, capture_output=True)
        # The unmarked reference frames, with nothing drawn.
        subprocess.run([str(exe), "process", "--input", str(clip), "--output", str(clean)],
                       check=True, capture_output=True)
        a, b = y4m_frames(marked), y4m_frames(clean)
        psnr = [10 * np.log10(255 ** 2 / max(((x[:W * H].astype(float) - y[:W * H]) ** 2).mean(), 1e-9))
                for x, y in zip(a, b)]
        n = len(a)
        cost = json.loads(subprocess.run([str(cost_exe), str(clean)], capture_output=True,
                                         text=True, check=True).stdout)
        row = {"clip": name, "frames": n, "psnr_min": round(min(psnr), 2),
               "psnr_mean": round(float(np.mean(psnr)), 2),
               "embed_ms": cost["ms_per_frame_median"], "framegate": {},
               "peer": {}}
        for kbps in bitrates:
            enc = out / f"wm-{kbps}.mp4"
            ffmpeg("-i", marked, *cbr(kbps), enc)
            t = time.perf_counter()
            two = read(exe, enc, 2)
            read_ms = (time.perf_counter() - t) / n * 1000
            row["framegate"][kbps] = {"2s": two, "1s": read(exe, enc, 1),
                                      "frame": read(exe, enc, 0.04), "read_ms": round(read_ms, 2)}
            unmarked = out / f"wm-clean-{kbps}.mp4"
            ffmpeg("-i", clean, *cbr(kbps), unmarked)
            row["framegate"][kbps]["unmarked"] = {"2s": read(exe, unmarked, 2),
                                                  "frame": read(exe, unmarked, 0.04)}
        # Attacks start from the 1 Mbit/s encode (or the highest bitrate measured without it).
        base_kbps = 1000 if 1000 in bitrates else max(bitrates)
        base = out / f"wm-{base_kbps}.mp4"
        attacks = {}
        for what, vf, extra in [("downscaled to 640x360 (600 kbit/s)", "scale=640:360", cbr(600)),
                                ("encoded again (1 Mbit/s)", "null", cbr(1000)),
                                ("cropped 10% (1 Mbit/s)", "crop=iw*0.9:ih*0.9,scale=1280:720", cbr(1000)),
                                ("15 fps (1 Mbit/s)", "fps=15", cbr(1000))]:
            dst = out / "wm-attack.mp4"
            ffmpeg("-i", base, "-vf", vf, *extra, dst)
            attacks[what] = read(exe, dst, 2)
        row["attacks_from_kbps"] = base_kbps
        row["attacks"] = attacks
        for method in ("dwtDct", "dwtDctSvd"):
            pm = out / "wm-peer.y4m"
            e = peer(method, clean, pm, args.peer_frames, "embed")
            res = {"embed_ms": round(e["embed_ms"], 1), "psnr_min": round(e["psnr"], 2)}
            for kbps in bitrates:
                enc = out / f"wm-peer-{kbps}.mp4"
                ffmpeg("-i", pm, *cbr(kbps), enc)
                dec = out / "wm-peer-dec.y4m"
                ffmpeg("-i", enc, "-pix_fmt", "yuv420p", dec)
                d = peer(method, dec, None, args.peer_frames, "read")
                res[kbps] = {"frame": round(d["found"], 3), "read_ms": round(d["read_ms"], 1)}
            row["peer"][method] = res
        results.append(row)
        print(json.dumps(row), flush=True)

    pct = lambda v: f"{v * 100:.0f}%"  # noqa: E731
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; "
        f"clips {W}x{H}@25, {args.seconds} s; x264 ultrafast zerolatency CBR, key frame every 2 s. "
        f"invisible-watermark on the first {args.peer_frames} frames of each clip.",
        "",
        "| clip | bitrate | framegate: 2 s windows | 1 s windows | single frames | wrong IDs | "
        "unmarked: IDs reported | DWT-DCT: frames | DWT-DCT-SVD: frames |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for kbps in bitrates:
            f = r["framegate"][kbps]
            lines.append(
                f"| {r['clip']} | {kbps} kbit/s | {pct(f['2s']['found'])} | {pct(f['1s']['found'])} | "
                f"{pct(f['frame']['found'])} | {f['2s']['wrong'] + f['1s']['wrong'] + f['frame']['wrong']} | "
                f"{f['unmarked']['2s']['wrong'] + f['unmarked']['frame']['wrong']} | "
                f"{pct(r['peer']['dwtDct'][kbps]['frame'])} | {pct(r['peer']['dwtDctSvd'][kbps]['frame'])} |")
    lines += ["", "| clip | luma PSNR min / mean | embed ms/frame | read ms/frame (decode included) | "
                  "DWT-DCT embed / read ms | DWT-DCT-SVD embed / read ms |", "|---|---|---|---|---|---|"]
    for r in results:
        k = bitrates[-1]
        lines.append(
            f"| {r['clip']} | {r['psnr_min']} / {r['psnr_mean']} dB | {r['embed_ms']} | "
            f"{r['framegate'][k]['read_ms']} | {r['peer']['dwtDct']['embed_ms']} / "
            f"{r['peer']['dwtDct'][k]['read_ms']} | {r['peer']['dwtDctSvd']['embed_ms']} / "
            f"{r['peer']['dwtDctSvd'][k]['read_ms']} |")
    lines += ["", f"Attacks on the {results[0]['attacks_from_kbps']} kbit/s encode:", "",
              "| clip | " + " | ".join(results[0]["attacks"]) + " |",
              "|---|" + "---|" * len(results[0]["attacks"])]
    for r in results:
        lines.append(f"| {r['clip']} | " + " | ".join(
            f"{pct(v['found'])} of 2 s windows" for v in r["attacks"].values()) + " |")
    long = None
    if args.long_seconds:
        long = long_run(exe, out, args.long_seconds, out / "wm.toml")
        print(json.dumps(long), flush=True)
        lines += ["", f"Pan B alone, {long['seconds']} s at 500 kbit/s (2 s windows):", "",
                  "| windows | ID read | wrong IDs | confidence min / 5th percentile / median | "
                  "unmarked or wrong key: windows, confidence mean ± sd, max, IDs |",
                  "|---|---|---|---|---|",
                  f"| {long['windows']} | {long['read']} | {long['wrong']} | "
                  f"{long['confidence_min']} / {long['confidence_p5']} / {long['confidence_median']} | "
                  f"{long['noise_windows']}: {long['noise_mean']} ± {long['noise_sd']}, "
                  f"{long['noise_max']}, {long['noise_ids']} |"]
    noisy_rows = None
    if args.noisy_seconds:
        noisy_rows = noisy(exe, out, args.noisy_seconds, [500, 1000], out / "wm.toml")
        lines += ["", f"Noisy scenes ({args.noisy_seconds} s each, scripts/wm_scenes.py):", ""]
        lines += noisy_table(noisy_rows, [500, 1000])
    md = "\n".join(lines) + "\n"
    (out / "watermark.md").write_text(md)
    (out / "watermark.json").write_text(json.dumps({"clips": results, "long": long,
                                                    "noisy": noisy_rows}, indent=2))
    print(md)


if __name__ == "__main__":
    if not PYTHON.exists():
        sys.exit("target/pytools is missing: run scripts/setup-debian.sh")
    try:
        import numpy  # noqa: F401
    except ImportError:
        # numpy lives in the test tools' environment: run there.
        os.execv(str(PYTHON), [str(PYTHON), __file__, *sys.argv[1:]])
    main()
