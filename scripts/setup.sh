#!/usr/bin/env bash
# Installs what bt needs on a fresh Debian or Ubuntu machine: Go is assumed;
# a Vulkan driver (the CPU driver lavapipe when no other is present), the
# Fashion-MNIST data set and libjpeg-turbo's headers (the loader's JPEG
# decoder; build with -tags nolibjpeg where it cannot be installed) come
# from apt. Sourced by scripts/test.sh and
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
