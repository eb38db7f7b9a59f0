#!/usr/bin/env bash
# Prepares the GPU checks for a session lent a device machine (see
# scripts/gpu-check.sh), here, where there is a network: builds bin/bt for
# x86-64 Linux (the device machine has no Go) and downloads the Vulkan
# loader packages into .gl/, which git ignores. Then run on the device, with
# bin and .gl carried:  bash scripts/gpu-check.sh [STAGE ...]
set -euo pipefail
cd "$(dirname "$0")/.."
GOOS=linux GOARCH=amd64 go build -ldflags="-s -w" -o bin/bt ./cmd/bt
grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >> .git/info/exclude
mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
# shellcheck disable=SC2086
apt-get $o update -qq
(cd .gl && apt-get $o download libvulkan1 >/dev/null)
ls -la bin/bt .gl
