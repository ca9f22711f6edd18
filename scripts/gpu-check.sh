#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, what framegate chooses there (NVDEC, NVENC or
# x264, the detector's CUDA provider) and how many 1080p30 cameras with detection it keeps in real
# time; written as a report (gpu-report.md and .json) for docs/benchmarks.md. At most 8 minutes.
#
#   scripts/gpu-check.sh [--out DIR]
#       On a machine set up by scripts/setup-debian.sh (with --gpu for ONNX Runtime's GPU build):
#       builds the release binary, runs the GPU tests (NVDEC and CUDA provider tests assert what the
#       machine's capabilities predict), then the report.
#   scripts/gpu-check.sh bundle
#       Here, for a bare GPU machine that cannot fetch anything: packs the release binary, the
#       GStreamer libraries and plugins it uses (NVIDIA's nvcodec among them), gst-inspect, ONNX
#       Runtime, the model and a 1080p30 clip of real footage into .gpu/bundle.tar.xz (ignored by
#       git; under 60 MiB). ONNX Runtime's CUDA provider (280 MB) is packed only if it fits.
#   scripts/gpu-check.sh run --bundle .gpu/bundle.tar.xz [--out DIR]
#       There: unpacks the bundle to /tmp/framegate-gpu and writes the report. NVIDIA's CUDA and
#       cuDNN libraries, when a Python environment there has their wheels, are linked beside ONNX
#       Runtime, where framegate finds them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=local
bundle=""
out="$root/bench-out/gpu"
budget=360
while [ $# -gt 0 ]; do
  case "$1" in
    bundle) mode=bundle ;;
    run) mode=run ;;
    --bundle) bundle="$2"; shift ;;
    --out) out="$2"; shift ;;
    --budget-s) budget="$2"; shift ;;
    *) echo "usage: $0 [bundle | run --bundle FILE] [--out DIR] [--budget-s S]" >&2; exit 2 ;;
  esac
  shift
done

clip_1080p30() { # $1: the clip to make (real footage, 10 s, a key frame every second)
  [ -s "$1" ] || ffmpeg -v error -y -stream_loop 3 -i ../shared/testdata/vtest.avi -t 10 \
    -vf "scale=1920:1080,framerate=fps=30" -c:v libx264 -preset fast -profile:v high -bf 0 \
    -g 30 -b:v 6000k -pix_fmt yuv420p -an "$1"
}

case "$mode" in
bundle)
  cargo build --release --quiet
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage"/{bin,lib,gst,libexec,assets/onnxruntime,assets/models,assets/media}
  cp target/release/framegate "$stage/bin/"
  strip "$stage/bin/framegate"
  cp /usr/bin/gst-inspect-1.0 /usr/bin/gst-launch-1.0 "$stage/bin/"
  multiarch=$(gcc -print-multiarch)
  gstlib=/usr/lib/$multiarch/gstreamer-1.0
  cp /usr/lib/$multiarch/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner "$stage/libexec/"
  # The plugins a file camera with detection and an RTSP output use, NVIDIA's included; not
  # libav (its codec libraries are 200 MB and would not travel): NVDEC decodes there, and a
  # machine without it reports no decoder.
  for p in coreelements app playback typefindfunctions isomp4 videoparsersbad x264 nvcodec \
      videoconvertscale videorate videotestsrc rtsp rtp rtpmanager udp tcp codectimestamper; do
    if [ -f "$gstlib/libgst$p.so" ]; then cp "$gstlib/libgst$p.so" "$stage/gst/"; fi
  done
  # Every library those need, but the C and C++ runtimes (the machine's own are newer).
  for f in "$stage"/bin/* "$stage"/gst/*.so "$stage"/libexec/*; do
    ldd "$f" | awk '/=> \//{print $3}'
  done | sort -u | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
      *) cp -L "$lib" "$stage/lib/" ;;
    esac
  done
  cp target/pytools/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* \
     target/pytools/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime_providers_shared.so \
     "$stage/assets/onnxruntime/"
  cp target/assets/models/centernet.onnx "$stage/assets/models/"
  clip_1080p30 "$stage/assets/media/camera-1080p30.mp4"
  cp scripts/gpu_check.py "$stage/"
  mkdir -p .gpu
  tar -C "$stage" -cf - . | xz -T0 -6 > .gpu/bundle.tar.xz
  size=$(stat -c %s .gpu/bundle.tar.xz)
  echo ".gpu/bundle.tar.xz: $((size / 1048576)) MiB"
  if [ "$size" -gt $((60 * 1048576)) ]; then
    echo "the bundle is over 60 MiB: it would not travel" >&2
    exit 1
  fi
  ;;
run)
  [ -f "$bundle" ] || { echo "no bundle: make one here with '$0 bundle'" >&2; exit 2; }
  fg=/tmp/framegate-gpu
  rm -rf "$fg" && mkdir -p "$fg"
  xz -dc "$bundle" | tar -C "$fg" -xf -
  # NVIDIA's CUDA and cuDNN wheels of a Python environment there (CUDA 13, as onnxruntime-gpu).
  for site in /opt/*/.venv/lib/python3*/site-packages /usr/local/lib/python3*/dist-packages; do
    if [ -d "$site/nvidia" ]; then ln -sfn "$site/nvidia" "$fg/assets/onnxruntime/nvidia"; break; fi
  done
  # The driver's libraries (libcuda, libnvcuvid) where the machine keeps them.
  driver=""
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do [ -d "$d" ] && driver="$driver:$d"; done
  export LD_LIBRARY_PATH="$fg/lib$driver" PATH="$fg/bin:$PATH"
  export GST_PLUGIN_SYSTEM_PATH_1_0="$fg/gst" GST_PLUGIN_PATH_1_0="" \
    GST_PLUGIN_SCANNER_1_0="$fg/libexec/gst-plugin-scanner" GST_REGISTRY_1_0="$fg/registry.bin"
  mkdir -p "$out"
  python3 "$fg/gpu_check.py" --framegate "$fg/bin/framegate" \
    --model "$fg/assets/models/centernet.onnx" --clip "$fg/assets/media/camera-1080p30.mp4" \
    --out "$out" --budget-s "$budget"
  ;;
local)
  start=$(date +%s)
  cargo build --release --quiet
  mkdir -p "$out"
  # The tests that meet the GPU: decoder and encoder choice, `check` of hardware settings, the
  # CUDA provider (each asserts what this machine's capabilities predict).
  cargo test --quiet --test cli check_says_when_this_machine_cannot_meet_a_hardware_setting \
    2>&1 | tee "$out/tests.log"
  cargo test --quiet --test analytics provider 2>&1 | tee -a "$out/tests.log"
  cargo test --quiet --test gateway rtsp_camera_to_rtsp_output 2>&1 | tee -a "$out/tests.log"
  cargo test --quiet --test resilience an_h265_camera_is_decoded 2>&1 | tee -a "$out/tests.log"
  clip="$root/bench-out/camera-1080p30.mp4"
  mkdir -p bench-out
  clip_1080p30 "$clip"
  left=$((480 - ($(date +%s) - start) - 30))
  [ "$left" -gt 60 ] || { echo "no time left for the report" >&2; exit 1; }
  target/pytools/bin/python scripts/gpu_check.py --framegate target/release/framegate \
    --model target/assets/models/centernet.onnx --clip "$clip" --out "$out" \
    --budget-s "$((left < budget ? left : budget))"
  ;;
esac
