"""The overlay both Python baselines draw with numpy and OpenCV on a BGR picture: a darkened
top-left corner with the stream id, the wall-clock time and the frame number, and one box with a
label (what framegate's `overlay` processor draws). Used by the peer pipe (`overlay_pipe.py`)
and by framegate's `python` processor in the benchmark (`overlay_processor.py`): the same code
on both sides, so that only the plumbing around it differs.
"""
import time

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw(frame, stream, seq):
    """Draws the overlay on `frame` (HxWx3 uint8, BGR) in place."""
    height, width = frame.shape[:2]
    scale = max(height / 720.0, 0.4)
    thick = max(int(round(2 * scale)), 1)
    line = int(34 * scale)
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
    lines = [f"{stream}  {stamp} UTC", f"frame {seq}"]
    # The backdrop: darken the corner, as framegate's overlay does.
    bw, bh = int(640 * scale), line * len(lines) + int(12 * scale)
    corner = frame[:bh, :bw]
    np.right_shift(corner, 2, out=corner)
    for i, text in enumerate(lines):
        cv2.putText(frame, text, (int(8 * scale), line * (i + 1)), FONT, scale, (255, 255, 255), thick)
    x, y = width // 3, height // 3
    cv2.rectangle(frame, (x, y), (x + width // 8, y + height // 4), (64, 230, 0), thick)
    cv2.putText(frame, "person 0.90", (x, y - 4), FONT, scale * 0.6, (64, 230, 0), thick)
