#!/usr/bin/env bash
# The main job on a fresh machine: set up, build bt, list the adapters and
# check every kernel on the chosen one, then benchmark GEMM beside the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
go build -o bt ./cmd/bt
./bt devices
./bt bench
