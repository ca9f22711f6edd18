"""Test: half a second per call, and a box each time."""

import time


def process(frame, meta):
    time.sleep(0.5)
    return [{"box": [0, 0, 16, 16], "label": "slowpoke", "score": 0.5}]
