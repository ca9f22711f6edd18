#!/usr/bin/env python3
"""The peer baseline: how many teams process video today, made as fast as that approach can be.

    ffmpeg (decode) ──raw BGR on a pipe──▶ this loop (numpy + OpenCV) ──raw BGR──▶ ffmpeg (x264)

It draws what framegate's `overlay` draws: a dark backdrop in the top-left corner with the stream
id, the wall-clock time and the frame number, and one box with a label. One preallocated frame,
filled with readinto and drawn on in place: no per-frame allocation or copy beyond the pipes.

Usage: overlay_pipe.py WIDTH HEIGHT STREAM_ID < bgr frames > bgr frames
"""
import sys
import time

import cv2
import numpy as np

width, height, stream = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
frame = np.empty((height, width, 3), dtype=np.uint8)
view = memoryview(frame).cast("B")
size = width * height * 3
inp, out = sys.stdin.buffer, sys.stdout.buffer
scale = max(height / 720.0, 0.4)
thick = max(int(round(2 * scale)), 1)
font = cv2.FONT_HERSHEY_SIMPLEX
line = int(34 * scale)
seq = 0
while True:
    got = 0
    while got < size:
        n = inp.readinto(view[got:])
        if not n:
            sys.exit(0)
        got += n
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
    lines = [f"{stream}  {stamp} UTC", f"frame {seq}"]
    # The backdrop: darken the corner, as framegate's overlay does.
    bw, bh = int(640 * scale), line * len(lines) + int(12 * scale)
    corner = frame[:bh, :bw]
    np.right_shift(corner, 2, out=corner)
    for i, text in enumerate(lines):
        cv2.putText(frame, text, (int(8 * scale), line * (i + 1)), font, scale, (255, 255, 255), thick)
    x, y = width // 3, height // 3
    cv2.rectangle(frame, (x, y), (x + width // 8, y + height // 4), (64, 230, 0), thick)
    cv2.putText(frame, "person 0.90", (x, y - 4), font, scale * 0.6, (64, 230, 0), thick)
    out.write(view)
    seq += 1
