"""Measures PyTorch's CPU inference speed on a bt backbone, the reference
beside which BENCHMARKS.md sets bt's encoder and ONNX Runtime
(go test -bench Embed ./bt/onnx/):

  /usr/bin/python3 tools/reference/torch_embed_speed.py [ARCH [SIZE [BATCH [THREADS [SECONDS]]]]]

ARCH is torchvision's resnet18/34/50 (default resnet18) without its fc
layer, in evaluation mode under no_grad, on random 3-channel SIZE-pixel
images (default 224) in batches of BATCH (16), with THREADS intra-op
threads (default: one per core), for about SECONDS (20) after a warm-up.
The weights are random: they change nothing in the time of a dense CPU
forward pass.
"""
import os
import sys
import time

import torch
import torchvision


def main():
    arch = sys.argv[1] if len(sys.argv) > 1 else "resnet18"
    size, batch = (int(a) for a in (sys.argv[2:4] + ["224", "16"][len(sys.argv[2:4]):]))
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else os.cpu_count()
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 20
    torch.set_num_threads(threads)
    net = getattr(torchvision.models, arch)()
    net.fc = torch.nn.Identity()
    net.eval()
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        for _ in range(2):
            net(x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            net(x)
            n += batch
        elapsed = time.perf_counter() - start
    print(f"PyTorch {torch.__version__} CPU, {threads} threads: {arch} at {size} px, batch {batch}: "
          f"{n / elapsed:.1f} images/s ({n} images in {elapsed:.1f} s)")


if __name__ == "__main__":
    main()
