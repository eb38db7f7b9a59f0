#!/usr/bin/env bash
# The checks and benchmarks that need a GPU, as one short script for a
# session lent a device machine: run there from the repository root, after
# scripts/gpu-prepare.sh here, with bin and .gl carried. Each stage's log
# goes to ${OUT:-runs/gpu}/STAGE.log; BENCHMARKS.md takes its figures.
#
# Stages (default: all, in this order; meant to fit one 10-minute call of
# the device tool, and each can be run alone when they do not):
#   tune     bt tune on ResNet-50's step (90 s budget); the benchmarks below
#            then measure tuned tiles beside the built-in ones
#   devices  the adapter report and the kernels' self-check against float64
#   fma      the adapter's arithmetic ceiling (a pure-register FMA kernel)
#   gemm     bt's GEMM beside PyTorch's float32 matmul with TF32 off
#   conv     the convolution suite
#   loss     the fused loss against the GEMMs it replaces, N×D up to 2048×8192
#   twin     ResNet-50 at 224 px, batch 64, projector 8192³, in f32 and with
#            f16 activations (mixed precision), beside PyTorch (TF32 off),
#            and the tiny step of the CPU benchmarks
#   demo     bt demo with its GPU budget (3,000 steps of 256 pairs)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/gpu}
mkdir -p "$out"
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then
  export VK_DRIVER_FILES=$icd
fi
bt=bin/bt
[ -x "$bt" ] || { echo "no $bt: run scripts/gpu-prepare.sh first and carry bin" >&2; exit 2; }
python=python3
# PyTorch beside bt on the GPU; TORCH_DEVICE=cpu for a dry run without one.
torch_device=${TORCH_DEVICE:-cuda}

stage() {
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee -a "$out/$name.log"
}

tuned=$out/tune.json
tune=(-tune off)
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(tune devices fma gemm conv loss twin demo)
for s in "${stages[@]}"; do
  [ -f "$tuned" ] && tune=(-tune "$tuned")
  case $s in
  tune) stage tune "$bt" tune -arch resnet50 -size 224 -batch 64 -projector 8192-8192-8192 -budget 90s -out "$tuned" ;;
  devices) stage devices "$bt" devices ;;
  gemm)
    stage gemm "$bt" bench "${tune[@]}" -suites gemm -time 1s \
      -gemm-shapes square-1024,square-2048,square-4096,projector-256x2048x8192,projector-wgrad-8192x2048x256
    stage gemm "$python" tools/reference/torch_matmul.py --device "$torch_device" 1024 2048 4096 256x8192x2048 8192x2048x256
    ;;
  conv) stage conv "$bt" bench -suites conv -time 1s ;;
  fma) stage fma "$bt" bench -suites fma ;; # the adapter's arithmetic ceiling
  loss) stage loss "$bt" bench -suites loss -loss-shapes 256x2048,2048x8192,512x16384 ;;
  twin)
    stage twin "$bt" bench "${tune[@]}" -suites twin -arch resnet50 -size 224 -batch 64 -projector 8192-8192-8192 -profile -precision both
    stage twin "$python" tools/reference/torch_twin_step.py --device "$torch_device" --arch resnet50 64 224 8192-8192-8192
    stage twin "$bt" bench -suites twin
    stage twin "$python" tools/reference/torch_twin_step.py --device "$torch_device" 256 28 512-512-512
    ;;
  demo) stage demo "$bt" demo -out runs/gpu-demo ;; # its table is in the log

  *)
    echo "unknown stage $s" >&2
    exit 2
    ;;
  esac
done
