#!/usr/bin/env bash
# Installs what bt needs on a fresh Debian or Ubuntu machine: Go is assumed;
# a Vulkan driver (the CPU driver lavapipe when no other is present), the
# Fashion-MNIST data set, libjpeg-turbo's headers (the loader's JPEG
# decoder; build with -tags nolibjpeg where it cannot be installed) and
# Open MPI (for scripts/build-mpi.sh and the tests of runs over several
# processes; the default build does not need it) come from apt. Sourced by scripts/test.sh and
# scripts/demo.sh; safe to run again.
set -euo pipefail

need=()
if ! compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null && ! compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null; then
  need+=(mesa-vulkan-drivers)
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  need+=(dataset-fashion-mnist)
fi
if [ ! -f /usr/include/jpeglib.h ]; then
  need+=(libjpeg62-turbo-dev)
fi
if ! command -v mpirun >/dev/null || ! pkg-config --exists ompi 2>/dev/null; then
  need+=(openmpi-bin libopenmpi-dev pkg-config)
fi
# --- bt serve: Debian's chromium, headless, for the browser test
# (cmd/bt TestServeInBrowser); bt serve itself needs no browser. ---
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  need+=(chromium)
fi
# --- end of bt serve's block ---
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: please install a Vulkan driver and Fashion-MNIST (${need[*]}); no apt-get here" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
