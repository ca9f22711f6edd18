"""Motion heat map, with numpy only: where the picture changes, the frame is tinted red.

    { kind = "python", file = "examples/python/heatmap.py", args = { decay = 0.9, gain = 4.0 } }

It reads the luma plane (`frame.y`) and draws on the chroma planes in place: no copy of the
frame, no conversion to BGR. The state (previous luma, the heat) is a copy of its own, kept
between calls: views of the frame itself must not outlive the call.
"""

import numpy as np

state = {}


def process(frame, meta, args):
    decay = float(args.get("decay", 0.9))
    gain = float(args.get("gain", 4.0))
    # Work on a quarter-size luma (every other pixel): the chroma planes' size.
    y = frame.y[::2, ::2].astype(np.float32)
    key = meta["stream"]
    prev, heat = state.get(key, (None, None))
    if prev is None or prev.shape != y.shape:
        state[key] = (y, np.zeros_like(y))
        return None
    heat = heat * decay + np.abs(y - prev) * (1.0 - decay)
    state[key] = (y, heat)
    tint = np.clip(heat * gain, 0, 100).astype(np.int16)
    if frame.format == "I420":
        v = frame.v
        h, w = v.shape
        v[:] = np.clip(v.astype(np.int16) + tint[:h, :w], 0, 255).astype(np.uint8)
    else:
        vv = frame.uv[:, :, 1]
        h, w = vv.shape
        vv[:] = np.clip(vv.astype(np.int16) + tint[:h, :w], 0, 255).astype(np.uint8)
    return None
