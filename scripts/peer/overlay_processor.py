"""framegate's `python` processor drawing the peer's overlay (`overlay_draw.py`) on `bgr()`,
written back with `set_bgr()`: the benchmark's like-for-like against `overlay_pipe.py`."""
from overlay_draw import draw

seq = [0]


def process(frame, meta):
    img = frame.bgr()
    draw(img, meta["stream"], seq[0])
    frame.set_bgr(img)
    seq[0] += 1
