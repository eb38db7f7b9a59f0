"""Times PyTorch's Barlow Twins twin step, the reference for bt's
BENCHMARKS.md: a backbone on 1-channel images (bt's twin benchmark feeds
grayscale views), a projector, the official loss and an SGD update, float32.

On the CPU (Debian's torch, /usr/bin/python3), as `bt bench -suites twin`
runs by default:
    python3 tools/reference/torch_twin_step.py 256 28 512-512-512 2
On a GPU, beside `bt bench -suites twin -arch resnet50 -size 224 -batch 64
-projector 8192-8192-8192`, with TF32 off as bt computes in full float32:
    python3 tools/reference/torch_twin_step.py --device cuda --arch resnet50 64 224 8192-8192-8192

Arguments: [batch] [size] [projector] [threads]; --arch tiny|resnet18|
resnet34|resnet50 (torchvision's, with a 1-channel stem and no classifier),
--device cpu|cuda, --seconds to measure for.
"""
import argparse
import sys
import time

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/fixtures")
from nets import Tiny, projector  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("batch", nargs="?", type=int, default=256)
ap.add_argument("size", nargs="?", type=int, default=28)
ap.add_argument("projector", nargs="?", default="512-512-512")
ap.add_argument("threads", nargs="?", type=int, default=2)
ap.add_argument("--arch", default="tiny", choices=["tiny", "resnet18", "resnet34", "resnet50"])
ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
ap.add_argument("--seconds", type=float, default=10)
a = ap.parse_args()

torch.set_default_dtype(torch.float32)
if a.device == "cpu":
    torch.set_num_threads(a.threads)
else:
    # bt computes in full float32: no TF32 in matrix products or convolutions.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
dev = torch.device(a.device)

if a.arch == "tiny":
    backbone, dim = Tiny(1), 64
else:
    backbone = getattr(torchvision.models, a.arch)()
    backbone.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    dim = backbone.fc.in_features
    backbone.fc = nn.Identity()
backbone = backbone.to(dev)
proj = projector([dim] + [int(w) for w in a.projector.split("-")]).to(dev)
bn = nn.BatchNorm1d(proj[-1].out_features, affine=False).to(dev)
params = list(backbone.parameters()) + list(proj.parameters())
opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
lam = 0.0051


def step(x1, x2):
    z1, z2 = proj(backbone(x1)), proj(backbone(x2))
    c = bn(z1).T @ bn(z2) / a.batch
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    loss = on + lam * off
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def sync():
    if a.device == "cuda":
        torch.cuda.synchronize()


x1 = torch.randn(a.batch, 1, a.size, a.size, device=dev)
x2 = torch.randn(a.batch, 1, a.size, a.size, device=dev)
for _ in range(3):
    step(x1, x2)
sync()
n, t0 = 0, time.time()
while time.time() - t0 < a.seconds or n < 3:
    step(x1, x2)
    n += 1
    sync()
dt = (time.time() - t0) / n
where = f"cpu threads={a.threads}" if a.device == "cpu" else f"{torch.cuda.get_device_name()} tf32=off"
print(f"pytorch {torch.__version__} {where} arch={a.arch} batch={a.batch} size={a.size} projector={a.projector}: "
      f"{dt * 1000:.1f} ms/step, {a.batch / dt:.1f} pairs/s")
