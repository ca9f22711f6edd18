"""Reference detections for tests: the CenterNet model run by Python ONNX Runtime on a photo,
with the usual Python pre-processing (Pillow decode, bilinear resize to 512x512, RGB 0..255).

Usage: detect_reference.py MODEL.onnx IMAGE.jpg MIN_SCORE
Prints one JSON line: [{"class": id, "score": s, "box": [x1, y1, x2, y2]}] in image pixels.
"""
import json
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

model, image, min_score = sys.argv[1], sys.argv[2], float(sys.argv[3])
img = Image.open(image).convert("RGB")
w, h = img.size
x = np.asarray(img.resize((512, 512), Image.BILINEAR), dtype=np.float32)[None]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
(dets,) = session.run(["tower_0/detections"], {session.get_inputs()[0].name: x})
out = []
for x1, y1, x2, y2, score, cls in dets[0]:
    if score >= min_score:
        sx, sy = w / 512.0, h / 512.0
        box = [float(x1 * sx), float(y1 * sy), float(x2 * sx), float(y2 * sy)]
        out.append({"class": int(cls), "score": float(score), "box": box})
print(json.dumps(out))
