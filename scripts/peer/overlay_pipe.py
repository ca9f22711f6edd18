#!/usr/bin/env python3
"""The peer baseline: how many teams process video today, made as fast as that approach can be.

    ffmpeg (decode) ──raw BGR on a pipe──▶ this loop (numpy + OpenCV) ──raw BGR──▶ ffmpeg (x264)

It draws what framegate's `overlay` draws (`overlay_draw.py`). One preallocated frame, filled
with readinto and drawn on in place: no per-frame allocation or copy beyond the pipes.

Usage: overlay_pipe.py WIDTH HEIGHT STREAM_ID < bgr frames > bgr frames
"""
import sys

import numpy as np

from overlay_draw import draw

width, height, stream = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
frame = np.empty((height, width, 3), dtype=np.uint8)
view = memoryview(frame).cast("B")
size = width * height * 3
inp, out = sys.stdin.buffer, sys.stdout.buffer
seq = 0
while True:
    got = 0
    while got < size:
        n = inp.readinto(view[got:])
        if not n:
            sys.exit(0)
        got += n
    draw(frame, stream, seq)
    out.write(view)
    seq += 1
