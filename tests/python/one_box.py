"""Test: returns one box (and the plane's address, to compare with framegate's)."""

seen = {"calls": 0}


def process(frame, meta):
    seen["calls"] += 1
    return [
        {"box": [10, 20, 40, 60], "label": "gadget", "score": 0.75},
        {"event": "address", "y": frame.y.__array_interface__["data"][0],
         "writable": bool(frame.y.flags.writeable), "calls": seen["calls"],
         "detections": len(meta["detections"]), "pts_ns": meta["pts_ns"]},
    ]
