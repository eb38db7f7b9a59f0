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
# --- cross-builds and their checks (scripts/release.sh, wine-check.sh, arm64-check.sh) ---
# mingw-w64 and the aarch64 toolchain for windows/amd64 and linux/arm64;
# Wine (with vkd3d for its DX12) under Xvfb to run bt.exe; qemu-user with
# Debian's arm64 Vulkan loader and lavapipe (multiarch) to run bt for arm64.
cross=0
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v xvfb-run >/dev/null || need+=(xvfb xauth)
[ -x /usr/lib/wine/wine64 ] || need+=(wine64 libvkd3d1)
if [ ! -f /usr/share/vulkan/icd.d/lvp_icd.aarch64.json ] || [ ! -e /usr/lib/aarch64-linux-gnu/libvulkan.so.1 ]; then
  need+=(libvulkan1:arm64 mesa-vulkan-drivers:arm64)
  dpkg --print-foreign-architectures | grep -qx arm64 || cross=1
fi
# --- end of cross-builds ---
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: please install a Vulkan driver and Fashion-MNIST (${need[*]}); no apt-get here" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  echo "setup: installing ${need[*]}" >&2
  [ "$cross" = 1 ] && $sudo dpkg --add-architecture arm64
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- ONNX Runtime (bt/onnx, examples/serve-embeddings) ---
# The shared library of ONNX Runtime 1.31.1, as the npm package
# onnxruntime-node ships it (about 300 MB with its other platforms' files,
# a few seconds to install), into the cache directory bt/onnx looks in
# (onnx.DefaultLibraryPath); BT_ONNXRUNTIME names another library instead.
# Skipped when present.
ort_version=1.31.1
ort_dir="${XDG_CACHE_HOME:-$HOME/.cache}/bt/onnxruntime-node-$ort_version"
if [ -z "${BT_ONNXRUNTIME:-}" ] && [ ! -f "$ort_dir/node_modules/onnxruntime-node/package.json" ]; then
  if ! command -v npm >/dev/null; then
    if ! command -v apt-get >/dev/null; then
      echo "setup: please install npm (for ONNX Runtime); no apt-get here" >&2
      exit 1
    fi
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "setup: installing npm" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm >/dev/null
  fi
  echo "setup: installing onnxruntime-node@$ort_version into $ort_dir" >&2
  mkdir -p "$ort_dir"
  # --ignore-scripts: its install script would fetch CUDA libraries from
  # outside the registry; the CPU library is in the package itself.
  npm install --prefix "$ort_dir" --no-audit --no-fund --ignore-scripts --loglevel=error "onnxruntime-node@$ort_version" >/dev/null
fi
# --- end ONNX Runtime ---
