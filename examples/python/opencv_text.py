"""Text and shapes with OpenCV on `frame.bgr()`, written back with `frame.set_bgr()`.

    { kind = "python", file = "examples/python/opencv_text.py", args = { text = "Gate 3" } }

`bgr()` converts the frame once (its first call per frame); drawing on it changes nothing until
`set_bgr()` converts it back into the frame. The boxes found so far (`meta["detections"]`, from
a `detect` processor placed before this one) are drawn too.
"""

import time

import cv2


def process(frame, meta, args):
    img = frame.bgr()
    h, w = img.shape[:2]
    cv2.rectangle(img, (10, 10), (w - 10, 60), (40, 40, 40), thickness=-1)
    stamp = time.strftime("%H:%M:%S", time.localtime(meta["capture_ms"] / 1000))
    text = "%s  %s  %s" % (args.get("text", meta["stream"]), stamp, frame.format)
    cv2.putText(img, text, (20, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.circle(img, (w - 40, 35), 12, (0, 0, 255), thickness=-1)
    for d in meta["detections"]:
        x, y, bw, bh = (int(v) for v in d["box"])
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (0, 200, 255), 2)
        cv2.putText(img, d["label"], (x, max(y - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 200, 255), 2)
    frame.set_bgr(img)
