#!/usr/bin/env python3
"""Natural, noisy test scenes for the watermark benchmark, written as raw I420 Y4M on stdout.

The scene is a wide canvas of real photos and texture: `horses.jpg` (grass), a fine gravel
texture (random stones of a few pixels, shaded), and a dark, nearly flat star field (luma about
16 with sparse faint stars). A 1280x720 camera pans over it, holds, and zooms in (12 s cycle:
4 s pan, 4 s hold, 4 s zoom to 1.6x), and each frame gets fresh Gaussian sensor noise of
`--noise` sigma on 8-bit luma (half on chroma), as a real sensor at that gain.

Usage: wm_scenes.py --seconds S --noise SIGMA [--scene mixed|texture|stars] > clip.y4m
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

W, H, FPS = 1280, 720, 25
SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def gravel(h, w, rng):
    """Stones of 2-9 px, each its own shade, with fine grain: texture x264 spends bits on."""
    img = np.full((h, w), 110, np.float32)
    for _ in range(h * w // 30):
        y, x, r = rng.integers(0, h), rng.integers(0, w), int(rng.integers(1, 5))
        cv2.circle(img, (int(x), int(y)), r, float(rng.integers(60, 200)), -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return cv2.GaussianBlur(img, (3, 3), 0.6)


def stars(h, w, rng):
    """A dark sky: luma about 16, a faint gradient, sparse stars of 1-2 px."""
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    img = 14 + 6 * yy + np.zeros((h, w), np.float32)
    n = h * w // 900
    ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
    img[ys, xs] = rng.integers(40, 230, n)
    return cv2.GaussianBlur(img, (3, 3), 0.7)


def canvas(scene, rng):
    """The scene, 2x the frame each way: a grey luma canvas and its two chroma planes."""
    ch, cw = 2 * H, 2 * W
    photo = cv2.imread(str(SHARED / "horses.jpg"))
    photo = cv2.resize(photo, (cw, ch), interpolation=cv2.INTER_CUBIC)
    yuv = cv2.cvtColor(photo, cv2.COLOR_BGR2YUV).astype(np.float32)
    if scene == "mixed":
        # Left: the photo; middle: gravel; right: the star field.
        third = cw // 3
        yuv[:, third:2 * third, 0] = gravel(ch, third, rng)
        yuv[:, 2 * third:, 0] = stars(ch, cw - 2 * third, rng)
        yuv[:, third:, 1:] = 128
    elif scene == "texture":
        yuv[:, cw // 2:, 0] = gravel(ch, cw - cw // 2, rng)
        yuv[:, cw // 2:, 1:] = 128
    elif scene == "stars":
        yuv[:, :, 0] = stars(ch, cw, rng)
        yuv[:, :, 1:] = 128
    return yuv


def camera(t):
    """(centre x, centre y, zoom) in canvas pixels at `t` seconds."""
    phase = t % 12
    x0, y0 = W, H
    if phase < 4:
        return x0 - 240 + 120 * phase, y0 - 20 * phase, 1.0
    x1, y1 = x0 + 240, y0 - 80
    if phase < 8:
        return x1, y1, 1.0
    return x1, y1, 1.0 + 0.6 * (phase - 8) / 4


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=12)
    ap.add_argument("--noise", type=float, default=2.5)
    ap.add_argument("--scene", default="mixed", choices=["mixed", "texture", "stars"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    yuv = canvas(args.scene, rng)
    out = sys.stdout.buffer
    out.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
    for i in range(int(args.seconds * FPS)):
        cx, cy, zoom = camera(i / FPS)
        # The camera's view: a (W/zoom x H/zoom) window around the centre, scaled to W x H.
        m = np.float32([[1 / zoom, 0, cx - W / (2 * zoom)], [0, 1 / zoom, cy - H / (2 * zoom)]])
        view = cv2.warpAffine(yuv, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        y = view[:, :, 0] + rng.normal(0, args.noise, (H, W)).astype(np.float32)
        uv = cv2.resize(view[:, :, 1:], (W // 2, H // 2), interpolation=cv2.INTER_AREA)
        uv += rng.normal(0, args.noise / 2, uv.shape).astype(np.float32)
        out.write(b"FRAME\n")
        out.write(np.clip(np.rint(y), 0, 255).astype(np.uint8).tobytes())
        out.write(np.clip(np.rint(uv[:, :, 0]), 0, 255).astype(np.uint8).tobytes())
        out.write(np.clip(np.rint(uv[:, :, 1]), 0, 255).astype(np.uint8).tobytes())


if __name__ == "__main__":
    main()
