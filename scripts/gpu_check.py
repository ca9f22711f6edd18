#!/usr/bin/env python3
"""The GPU report of scripts/gpu-check.sh: what framegate chooses on a machine with an NVIDIA GPU,
and how many 1080p30 cameras with detection it keeps in real time there. Standard library only:
it runs on a bare machine beside a carried framegate.

Report (markdown and JSON): the GPU and driver; the nvcodec elements GStreamer registered (NVDEC,
NVENC); `framegate check` of a stream asking for `decoder.hardware = "on"`; one camera with the
shared detector: the decoder and encoder chosen (NVDEC where it exists; x264 where there is no
NVENC, as on H100/H200), the model's provider (CUDA where ONNX Runtime's GPU build and a GPU are
present) and its time per batch; then a search for the most cameras (pass-through + detection,
every frame decoded) in real time within the time left.

Usage: gpu_check.py --framegate BIN --model ONNX --clip MP4 --out DIR [--budget-s 360]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FPS = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.load(r)


def sh(cmd, timeout=60):
    """(exit status, stdout + stderr) of a command; never raises."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)


def gpu():
    code, out = sh(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                    "--format=csv,noheader"])
    return out.splitlines()[0] if code == 0 and out else f"none found ({out or 'no nvidia-smi'})"


def nvcodec_elements():
    """The nvcodec element names GStreamer registered here."""
    code, out = sh(["gst-inspect-1.0", "nvcodec"])
    if code != 0:
        return []
    names = []
    for line in out.splitlines():
        word = line.strip().split(":", 1)[0].strip()
        if word.startswith(("nv", "cuda")) and " " not in word:
            names.append(word)
    return sorted(set(names))


def config(streams, model, clip, http, decoder="auto"):
    cfg = (f'[server]\nhttp = "127.0.0.1:{http}"\nrtsp_port = 0\nsummary_interval_s = 0\n'
           f'\n[[models]]\nid = "coco"\npath = "{model}"\nformat = "centernet"\n')
    for i in range(streams):
        cfg += (f'\n[[streams]]\nid = "cam{i}"\nsource = "file://{clip}"\naudio = "off"\n'
                f'video = "auto"\ndecoder = {{ hardware = "{decoder}" }}\n'
                'processors = [ { kind = "detect", model = "coco" } ]\n')
    return cfg


def get(doc, *keys):
    for k in keys:
        doc = doc.get(k, 0) if isinstance(doc, dict) else 0
    return doc or 0


class Framegate:
    """framegate run on a config, stopped on leaving."""

    def __init__(self, exe, text, log):
        self.http = None
        self.dir = tempfile.TemporaryDirectory()
        path = Path(self.dir.name) / "gpu.toml"
        path.write_text(text)
        self.log = open(log, "w")
        self.proc = subprocess.Popen([exe, "run", "--config", str(path)],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        self.dir.cleanup()


def wait_live(port, streams, deadline, frames=2 * FPS):
    """Waits until every stream is live and has decoded `frames`; the streams, or None."""
    while time.time() < deadline:
        try:
            ss = api(port, "/api/streams")
            if len(ss) == streams and all(
                    s["state"] == "live" and get(s, "frames", "decoded") >= frames for s in ss):
                return ss
        except OSError:
            pass
        time.sleep(0.5)
    return None


# Beside the camera with the detector: the same clip with an overlay, to count the frames the
# overlay had to copy before drawing (decision 0034: libav keeps its pictures as references, so
# every frame it decodes is copied; NVDEC's frames, downloaded from the GPU, should not be).
DRAWN = ('\n[[streams]]\nid = "drawn"\nsource = "file://{clip}"\naudio = "off"\n'
         'processors = [ { kind = "overlay" } ]\n')


def one_camera(exe, model, clip, out):
    http = free_port()
    cfg = config(1, model, clip, http) + DRAWN.replace("{clip}", str(clip))
    with Framegate(exe, cfg, out / "one-camera.log"):
        ss = wait_live(http, 2, time.time() + 60)
        if ss is None:
            return {"error": "the camera did not go live in 60 s (see one-camera.log)"}
        time.sleep(5)
        s = api(http, "/api/streams/cam0")
        drawn = api(http, "/api/streams/drawn")
        m = api(http, "/api/models")[0]
    return {
        "drawn": {"decoder": get(drawn, "source", "decoder"),
                  "processed": get(drawn, "frames", "processed"),
                  "copied": get(drawn, "frames", "copied")},
        "decoder": get(s, "source", "decoder"), "decoder_on_gpu": bool(get(s, "source", "hardware")),
        "encoder": s.get("encoder"), "provider": m.get("provider"),
        "mean_batch_ms": round(m.get("mean_batch_ms", 0), 2),
        "mean_prepare_ms": round(m.get("mean_prepare_ms", 0), 2),
        "largest_batch": m.get("largest_batch"), "inputs": m.get("inputs"),
    }


def measure(exe, model, clip, n, seconds, out):
    """One try with `n` cameras: (real time?, summary)."""
    http = free_port()
    with Framegate(exe, config(n, model, clip, http), out / f"scale-{n}.log"):
        if wait_live(http, n, time.time() + 60) is None:
            return False, {"streams": n, "real_time": False, "error": "not all live in 60 s"}
        b, m0, t0 = api(http, "/api/streams"), api(http, "/api/models"), time.time()
        time.sleep(seconds)
        a, m1, t1 = api(http, "/api/streams"), api(http, "/api/models"), time.time()
    wall = t1 - t0
    before = {s["id"]: s for s in b}
    decoded = [(get(s, "frames", "decoded") - get(before[s["id"]], "frames", "decoded")) / wall
               for s in a]
    outs = [(get(s, "frames", "passed") + get(s, "frames", "encoded")
             - get(before[s["id"]], "frames", "passed") - get(before[s["id"]], "frames", "encoded"))
            / wall for s in a]
    inferences = (sum(get(m, "inputs") for m in m1) - sum(get(m, "inputs") for m in m0)) / wall
    ok = min(decoded) >= 0.97 * FPS and min(outs) >= 0.97 * FPS
    return ok, {"streams": n, "real_time": ok, "min_fps_decoded": round(min(decoded), 1),
                "min_fps_out": round(min(outs), 1), "inferences_per_s": round(inferences, 1),
                "mean_batch_ms": round(m1[0].get("mean_batch_ms", 0), 2) if m1 else None}


def search(exe, model, clip, out, until, seconds=5):
    """Doubles from 4 cameras, then bisects, while time is left; (most in real time, tries)."""
    tries, good, bad, n = [], 0, None, 4
    while time.time() + 25 + seconds < until:
        ok, t = measure(exe, model, clip, n, seconds, out)
        tries.append(t)
        print(f"  {n} cameras: {'real time' if ok else 'behind'} {t}", flush=True)
        if ok:
            good = n
            n = n * 2 if bad is None else (n + bad) // 2
        else:
            bad = n
            n = (good + n) // 2
        if bad is not None and bad - good <= max(1, good // 16):
            break
    return good, bad, tries


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--framegate", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-s", type=float, default=360)
    args = ap.parse_args()
    # The configs written below live in a temporary folder, where a relative path would be
    # taken from: the model and the clip are named by absolute paths.
    args.model, args.clip = (str(Path(p).resolve()) for p in (args.model, args.clip))
    start = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "gpu": gpu(),
              "cores": os.cpu_count(), "nvcodec": nvcodec_elements()}
    nv = report["nvcodec"]
    report["nvdec"] = [e for e in nv if e.endswith("dec")]
    report["nvenc"] = [e for e in nv if e.endswith("enc")]
    print(f"GPU: {report['gpu']}; nvcodec: {', '.join(nv) or 'none'}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        on = Path(tmp) / "on.toml"
        on.write_text(config(1, args.model, args.clip, free_port(), decoder="on"))
        code, said = sh([args.framegate, "check", str(on)])
    report["check_decoder_on"] = {"status": code, "said": said[-400:]}
    report["one_camera"] = one_camera(args.framegate, args.model, args.clip, out)
    print(f"one camera: {report['one_camera']}", flush=True)
    good, bad, tries = search(args.framegate, args.model, args.clip, out, start + args.budget_s)
    report["scale"] = {"most_in_real_time": good, "first_behind": bad, "tries": tries}
    (out / "gpu-report.json").write_text(json.dumps(report, indent=2))
    one = report["one_camera"]
    expect_dec = bool(report["nvdec"])
    lines = [
        f"GPU check, {report['when']}: {report['gpu']}, {report['cores']} CPU cores.",
        "",
        "| what | found |",
        "|---|---|",
        f"| nvcodec elements | {', '.join(nv) or 'none (no NVIDIA driver seen by GStreamer)'} |",
        f"| `decoder.hardware = \"on\"` check | {'accepted' if code == 0 else 'refused'}"
        f"{' (as expected)' if (code == 0) == expect_dec else ' (NOT as expected)'} |",
        f"| decoder chosen (1080p30 H.264) | {one.get('decoder')} "
        f"({'GPU' if one.get('decoder_on_gpu') else 'CPU'}) |",
        f"| encoder chosen | {one.get('encoder') or '— (pass-through: the slate encoder only)'}; "
        f"NVENC {'present' if report['nvenc'] else 'absent: x264 is taken'} |",
        f"| frames the overlay drew on a copy (decision 0034) | "
        f"{get(one, 'drawn', 'copied')} of {get(one, 'drawn', 'processed')} "
        f"(decoder {get(one, 'drawn', 'decoder')}) |",
        f"| detector provider | {one.get('provider')} |",
        f"| detector time per batch | {one.get('mean_batch_ms')} ms (largest batch "
        f"{one.get('largest_batch')}; pre-processing {one.get('mean_prepare_ms')} ms per frame) |",
        f"| 1080p30 cameras with detection in real time | {good}"
        f"{'' if bad else '+'} (first behind: {bad or 'not reached in the time given'}) |",
    ]
    md = "\n".join(lines) + "\n"
    (out / "gpu-report.md").write_text(md)
    print(md)
    return 0 if one.get("decoder") else 1


if __name__ == "__main__":
    sys.exit(main())
