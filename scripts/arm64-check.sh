#!/usr/bin/env bash
# Runs a linux/arm64 bt under qemu-user on this (amd64) machine, with
# Debian's arm64 Vulkan loader and lavapipe (multiarch: libvulkan1:arm64,
# mesa-vulkan-drivers:arm64, installed by scripts/setup.sh).
#
#   scripts/arm64-check.sh BT [bt arguments...]   (default: devices)
set -euo pipefail
bin=$(realpath "$1")
shift
[ $# -gt 0 ] || set -- devices
# Only the arm64 lavapipe: the loader would try the amd64 driver too.
export VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.aarch64.json
exec qemu-aarch64-static "$bin" "$@"
