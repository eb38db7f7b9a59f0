"""Times PyTorch's Barlow Twins twin step on the CPU, the reference for
bt's BENCHMARKS.md: the tiny backbone (tools/fixtures/models.py), a
projector, the official loss and an SGD update, float32.

/usr/bin/python3 tools/reference/torch_twin_step.py [batch] [size] [projector] [threads]
"""
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/fixtures")
torch.set_default_dtype(torch.float32)
from nets import Tiny, projector  # noqa: E402

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 256
size = int(sys.argv[2]) if len(sys.argv) > 2 else 28
spec = sys.argv[3] if len(sys.argv) > 3 else "512-512-512"
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
torch.set_num_threads(threads)
torch.set_default_dtype(torch.float32)

backbone = Tiny(1).float()
proj = projector([64] + [int(w) for w in spec.split("-")]).float()
bn = nn.BatchNorm1d(proj[-1].out_features, affine=False)
params = list(backbone.parameters()) + list(proj.parameters())
opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
lam = 0.0051


def step(x1, x2):
    z1, z2 = proj(backbone(x1)), proj(backbone(x2))
    c = bn(z1).T @ bn(z2) / batch
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    loss = on + lam * off
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


x1, x2 = torch.randn(batch, 1, size, size), torch.randn(batch, 1, size, size)
for _ in range(2):
    step(x1, x2)
n, t0 = 0, time.time()
while time.time() - t0 < 10 or n < 3:
    step(x1, x2)
    n += 1
dt = (time.time() - t0) / n
print(f"pytorch {torch.__version__} cpu threads={threads} batch={batch} size={size} projector={spec}: "
      f"{dt * 1000:.1f} ms/step, {batch / dt:.1f} pairs/s")
