"""Returns boxes: the bright spots of the picture (lamps, headlights, a white card held up).

    { kind = "python", file = "examples/python/bright_spots.py", draws = false,
      args = { threshold = 230, min_pixels = 64 } }

It only reads the luma plane (`draws = false`: never a copy, and the camera's video may pass
through). The boxes join the stream's detections like a detector's: `GET
/api/streams/{id}/detections`, `detection.appeared` events, alert rules on `class =
"bright_spot"`, a later `overlay` or `track`. It also returns an event when the picture goes
dark.
"""

import numpy as np

dark = {}


def process(frame, meta, args):
    threshold = int(args.get("threshold", 230))
    min_pixels = int(args.get("min_pixels", 64))
    # An 8x8 grid of cells: a cell is bright when enough of its pixels are.
    y = frame.y
    h, w = y.shape
    ch, cw = h // 8, w // 8
    cells = (y[: ch * 8, : cw * 8] >= threshold).reshape(8, ch, 8, cw).sum(axis=(1, 3))
    out = []
    for r, c in zip(*np.nonzero(cells >= min_pixels)):
        share = float(cells[r, c]) / (ch * cw)
        out.append({"box": [int(c * cw), int(r * ch), cw, ch], "label": "bright_spot",
                    "score": round(min(1.0, 0.5 + share), 3)})
    mean = float(y[::8, ::8].mean())
    was_dark = dark.get(meta["stream"], False)
    if (mean < 20) != was_dark:
        dark[meta["stream"]] = mean < 20
        out.append({"event": "dark" if mean < 20 else "light", "mean_luma": round(mean, 1)})
    return out
