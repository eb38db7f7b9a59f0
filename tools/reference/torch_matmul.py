"""Times PyTorch's float32 matrix product, the reference beside
`bt bench -suites gemm` on a GPU, with TF32 off (bt computes in full
float32):

    python3 tools/reference/torch_matmul.py --device cuda 1024 2048 4096

Each size n is an n×n×n product; M×N×K names another shape. It prints one
line per shape in GFLOP/s.
"""
import argparse
import time

import torch

ap = argparse.ArgumentParser()
ap.add_argument("shapes", nargs="*", default=["1024", "2048", "4096"])
ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
ap.add_argument("--seconds", type=float, default=2)
a = ap.parse_args()

if a.device == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device(a.device)


def sync():
    if a.device == "cuda":
        torch.cuda.synchronize()


for shape in a.shapes:
    m, n, k = ([int(shape)] * 3) if "x" not in shape else [int(v) for v in shape.split("x")]
    x = torch.randn(m, k, device=dev)
    y = torch.randn(k, n, device=dev)
    for _ in range(3):
        x @ y
    sync()
    reps, t0 = 0, time.time()
    while time.time() - t0 < a.seconds or reps < 3:
        x @ y
        reps += 1
        if reps % 10 == 0:
            sync()
    sync()
    dt = (time.time() - t0) / reps
    where = "cpu" if a.device == "cpu" else f"{torch.cuda.get_device_name()} tf32=off"
    print(f"pytorch {torch.__version__} {where} matmul {m}x{n}x{k}: {2 * m * n * k / dt / 1e9:.1f} GFLOP/s")
