#!/usr/bin/env bash
# The main job on a fresh machine: set up (Vulkan driver, Fashion-MNIST),
# build bt, check its kernels on the chosen adapter, then run the demo:
# pretrain with Barlow Twins, evaluate against a random initialisation,
# and leave the results, plots and checkpoint in runs/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# bin/, since ./bt is the package of the loss and trainer.
go build -o bin/bt ./cmd/bt
bin/bt devices
bin/bt demo "$@"
