#!/usr/bin/env bash
# Builds the demo's object detector, models/centernet.onnx (COCO-80, MobileNetV3 + CenterNet),
# from the package registries only: the TensorFlow.js graph model in the npm package
# @vladmandic/human@3.3.6, converted to ONNX (opset 17) with tf2onnx and tensorflow-cpu from PyPI.
# Usage: scripts/make-centernet.sh OUTPUT.onnx
# Takes a few minutes and about 2 GB of disk in target/ (TensorFlow); nothing is needed afterwards.
set -euo pipefail
out="${1:?usage: $0 OUTPUT.onnx}"
cd "$(dirname "$0")/.."
work="target/make-centernet"
mkdir -p "$work"

if [ ! -f "$work/package/models/centernet.json" ]; then
  (cd "$work" && npm pack --silent "@vladmandic/human@3.3.6" >/dev/null && tar xzf vladmandic-human-3.3.6.tgz)
fi
if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv"
fi
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
  "tensorflow-cpu==2.21.*" "tf2onnx==1.17.*" "onnx"

"$work/venv/bin/python" - "$work/package/models" "$work/graph" <<'EOF'
# Two fixes the TF 2.21 graph importer needs, then the weights beside the fixed graph.
import json, os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
with open(os.path.join(src, "centernet.json")) as f:
    model = json.load(f)
for node in model["modelTopology"]["node"]:
    attr = node.setdefault("attr", {})
    if node["op"] == "_FusedConv2D":
        n = int(attr.get("num_args", {}).get("i", "0"))
        attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * n}}
    if node["op"] == "TopKV2":
        attr["index_type"] = {"type": "DT_INT32"}
with open(os.path.join(dst, "centernet.json"), "w") as f:
    json.dump(model, f)
for group in model["weightsManifest"]:
    for p in group["paths"]:
        shutil.copy(os.path.join(src, p), os.path.join(dst, p))
EOF

# numpy 2 dropped np.product, which tf2onnx 1.17 still calls.
"$work/venv/bin/python" - "$work/graph/centernet.json" "$out" <<'EOF'
import runpy, sys
import numpy as np
np.product = np.prod
graph, out = sys.argv[1], sys.argv[2]
sys.argv = ["tf2onnx.convert", "--tfjs", graph, "--output", out, "--opset", "17"]
runpy.run_module("tf2onnx.convert", run_name="__main__")
EOF

"$work/venv/bin/python" - "$out" <<'EOF'
# The result must have the input and output the detector expects.
import sys, onnx
m = onnx.load(sys.argv[1])
dims = lambda v: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
inputs = {i.name: dims(i) for i in m.graph.input}
outputs = {o.name: dims(o) for o in m.graph.output}
assert inputs.get("tower_0/images:0") == [1, 512, 512, 3], inputs
assert outputs.get("tower_0/detections") == [1, 100, 6], outputs
print(f"{sys.argv[1]}: input {inputs}, detections {outputs['tower_0/detections']}")
EOF
