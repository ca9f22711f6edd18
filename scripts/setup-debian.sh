#!/usr/bin/env bash
# Installs everything framegate needs to build, run and test on Debian 12:
# GStreamer 1.22 (development files and the plugin sets framegate uses), the real
# servers and clients the tests start (nginx with the RTMP module, ffmpeg, Chromium),
# and the test tools (two Python validators, playwright-core).
set -euo pipefail
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
  pkg-config build-essential \
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev \
  libgstrtspserver-1.0-dev \
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
  gstreamer1.0-rtsp gstreamer1.0-x \
  nginx-light libnginx-mod-rtmp ffmpeg python3 python3-venv \
  chromium fonts-dejavu-core \
  >/dev/null
# Node.js for the browser test: the machine's own if it has one (it may come from another
# repository, which Debian's npm package would conflict with), Debian's otherwise.
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# Python validators the tests use as independent checkers (OpenAPI document, Prometheus text),
# in a virtual environment inside target/ (ignored by git).
cd "$(dirname "$0")/.."
if [ ! -x target/pytools/bin/python ]; then
  python3 -m venv target/pytools
fi
target/pytools/bin/pip install --quiet --disable-pip-version-check \
  "openapi-spec-validator==0.7.2" "prometheus-client==0.21.1"

# playwright-core drives Debian's Chromium in the dashboard test (it downloads no browser).
(cd tests/browser && npm ci --no-audit --no-fund --silent)
