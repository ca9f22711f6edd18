#!/usr/bin/env bash
# Installs everything framegate needs to build, run and test on Debian 12:
# GStreamer 1.22 (development files and the plugin sets framegate uses), the real
# servers and clients the tests start (nginx with the RTMP module, ffmpeg, Chromium, Firefox,
# PostgreSQL, Redis, Mosquitto),
# the test tools (Python validators, ONNX Runtime for reference runs, playwright-core and
# puppeteer-core),
# and the demo's assets in target/assets/: the ONNX Runtime library framegate loads, the
# object detector (built from the npm and PyPI registries) and footage with people.
#
# Usage: scripts/setup-debian.sh [--gpu]
#   --gpu  also installs ONNX Runtime's GPU build (onnxruntime-gpu with NVIDIA's CUDA and cuDNN
#          wheels, about 3 GB, from PyPI) for the detector's CUDA provider; framegate finds its
#          libraries by itself (no LD_LIBRARY_PATH). It needs NVIDIA's driver (CUDA 13: 580 or
#          newer) to use the GPU, and runs on the CPU without one. Once installed, later runs
#          without --gpu keep it.
set -euo pipefail
gpu=0
for arg in "$@"; do
  case "$arg" in
    --gpu) gpu=1 ;;
    *) echo "usage: $0 [--gpu]" >&2; exit 2 ;;
  esac
done
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# Debian's nginx package tries to start a system nginx on port 80; framegate's tests
# run their own nginx, so keep the package scripts from starting services.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  pkg-config build-essential libssl-dev curl openssl \
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev \
  libgstrtspserver-1.0-dev \
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
  gstreamer1.0-rtsp gstreamer1.0-x gstreamer1.0-nice \
  nginx-light libnginx-mod-rtmp ffmpeg python3 python3-venv python3-dev python3-numpy \
  chromium fonts-dejavu-core opencv-doc \
  postgresql redis-server mosquitto coturn etcd-server firefox-esr iproute2 \
  >/dev/null
# Node.js for the browser test: the machine's own if it has one (it may come from another
# repository, which Debian's npm package would conflict with), Debian's otherwise.
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# Python tools: validators the tests use as independent checkers (OpenAPI document, Prometheus
# text, schemathesis against the API), ONNX Runtime for the detector reference, OpenCV for the benchmarks peer baseline and
# matplotlib for their chart,
# in a virtual environment inside target/ (ignored by git).
cd "$(dirname "$0")/.."
if [ ! -x target/pytools/bin/python ]; then
  python3 -m venv target/pytools
fi
target/pytools/bin/pip install --quiet --disable-pip-version-check \
  "openapi-spec-validator==0.7.2" "prometheus-client==0.21.1" \
  "onnxruntime==1.31.1" "pillow==11.3.0" \
  "opencv-python-headless==4.12.0.88" "matplotlib==3.10.7" "PyWavelets==1.8.0" \
  "schemathesis==4.32.5" "motmetrics==1.4.0"
# The watermark benchmark's peer (its DWT-DCT methods need only numpy, OpenCV and PyWavelets;
# its declared torch dependency is for a learned method the benchmark does not use).
target/pytools/bin/pip install --quiet --disable-pip-version-check --no-deps "invisible-watermark==0.2.0"

# The demo's assets, where framegate looks for them (target/assets/, beside target/release/).
assets=target/assets
mkdir -p "$assets/onnxruntime" "$assets/models" "$assets/media"
# ONNX Runtime: the library from the PyPI wheel (framegate loads it at run time); the GPU build
# in its own environment (the two packages cannot share one), with NVIDIA's wheels linked beside.
ortgpu="onnxruntime-gpu[cuda,cudnn]==1.31.1"
if [ "$gpu" = 1 ]; then
  if [ ! -x target/pytools-gpu/bin/python ]; then
    python3 -m venv target/pytools-gpu
  fi
  target/pytools-gpu/bin/pip install --quiet --disable-pip-version-check "$ortgpu"
fi
if [ -d target/pytools-gpu ] && [ "$(ls target/pytools-gpu/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so 2>/dev/null)" ]; then
  site=$(realpath target/pytools-gpu/lib/python3*/site-packages)
  cp "$site"/onnxruntime/capi/libonnxruntime*.so* "$assets/onnxruntime/"
  ln -sfn "$site/nvidia" "$assets/onnxruntime/nvidia"
else
  rm -f "$assets"/onnxruntime/libonnxruntime_providers_{cuda,tensorrt}.so "$assets/onnxruntime/nvidia"
  cp target/pytools/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime*.so* "$assets/onnxruntime/"
fi
# The object detector: made from the registries by scripts/make-centernet.sh (about a minute,
# 2 GB of TensorFlow in target/), unless a checked copy is at hand.
model="$assets/models/centernet.onnx"
if [ ! -s "$model" ]; then
  shared=../shared/models/centernet.onnx
  if [ -f "$shared" ] && echo "8fb2ea6a24b30bc7d695f634fe38e20384792b4c9e9285aeb8c5a31abd492008  $shared" | sha256sum --check --status; then
    cp "$shared" "$model"
  else
    scripts/make-centernet.sh "$model"
  fi
fi
# Footage with people for the demo: OpenCV's vtest.avi (Debian's opencv-doc), as H.264.
footage="$assets/media/people.mp4"
if [ ! -s "$footage" ]; then
  ffmpeg -loglevel error -y -i /usr/share/doc/opencv-doc/examples/data/vtest.avi \
    -c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p -an "$footage"
fi

# playwright-core drives Debian's Chromium and puppeteer-core Debian's Firefox ESR in the dashboard
# tests (neither downloads a browser).
(cd tests/browser && npm ci --no-audit --no-fund --silent)
