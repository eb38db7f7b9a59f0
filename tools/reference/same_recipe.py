"""Same-recipe PyTorch reference for bt's learning quality (docs/quality.md,
issue 14): trains bt's `tiny` network on Fashion-MNIST with bt's recipe and
evaluates it with bt's protocol, so that bt's accuracy at a budget has a
reference beside it.

  /usr/bin/python3 tools/reference/same_recipe.py --steps 703 --seed 1 --out ref.json

matches

  bt pretrain -arch tiny -batch 256 -projector 1024-1024-1024 \\
      -epochs 10 -warmup 1 -lr 2 -steps 703 -seed 1
  bt eval -checkpoint … -probe-epochs 30 knn linear -fast

What is the same, and where bt defines it:
- network (models/, tools/fixtures/nets.py): tiny (3×3 stride-1 stem of 16
  channels, one basic block per stage at 16, 32, 64, global average pool),
  initialised as torchvision's ResNet (Kaiming normal fan_out convolutions,
  BN γ 1 β 0, zero_init_residual); projector Linear (no bias)–BN–ReLU
  blocks and a last Linear, PyTorch's default Linear initialisation; both
  views pass separately, so BatchNorm's statistics are per view.
- loss (bt/loss): embeddings batch-normalised (no affine, biased variance,
  eps 1e-5), C = Ẑ_Aᵀ Ẑ_B / N, Σ(1 − C_ii)² + λ Σ_{i≠j} C_ij², times scale.
- optimiser (bt/optim): the official LARS, weight decay 1.5e-6, momentum
  0.9, η 0.001; biases and BatchNorm parameters (1-D) excluded from weight
  decay and the trust ratio and trained at their own rate.
- schedule (bt/optim/schedule.go): base lr·batch/256, linear warm-up over
  round(warmup/epochs · steps) steps, then a cosine to 0.001 of the base at
  the budget's end; weights ×0.2, biases and BatchNorm ×0.0048.
- augmentations (pipeline/preset.go, the fashion-mnist preset), here by
  torchvision on PIL images as the official code: RandomResizedCrop(28,
  scale 0.08–1, ratio 3/4–4/3, bilinear), flip 0.5, ColorJitter(brightness
  0.4, contrast 0.4) with p 0.8, no grayscale, no blur, solarize p 0 / 0.2
  (view A / B), normalised by mean 0.2860 and std 0.3530.
- data: shuffled each epoch, batches of 256, the last partial one dropped.
- evaluation (bt/eval, cmd/bt/eval.go): eval-mode features of the whole
  normalised images; weighted kNN on cosine similarity (k = 20 and 200,
  weights exp(s/0.07)); the fast linear probe on features standardised by
  the training set's mean and biased variance (+1e-5): a Linear head
  (weights N(0, 0.01²), zero bias), SGD momentum 0.9, weight decay 1e-6,
  lr 0.3 cosine-decayed per epoch, batch 256 shuffled, last batch dropped.

With --evaluate, a bt checkpoint is evaluated here instead (bt's network,
this protocol), which tells a difference in training from one in
evaluation.

Random streams differ from bt's (same seed numbers, other generators), so
the two agree in distribution, not run for run.
"""
import argparse
import gzip
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torchvision import transforms as T
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from nets import LARS, Tiny, projector  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_backbone import load as load_backbone  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(data_dir, split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    return x, y.astype(np.int64)


def view(solarize_p):
    ops = [
        T.RandomResizedCrop(28, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(0.5),
        T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
    ]
    if solarize_p > 0:
        ops.append(T.RandomSolarize(128, p=solarize_p))
    return T.Compose(ops + [T.ToTensor(), T.Normalize([MEAN], [STD])])


class Pairs(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images
        self.a, self.b = view(0.0), view(0.2)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i], mode="L")
        return self.a(img), self.b(img)


def init_like_torchvision(net):
    """torchvision's ResNet initialisation, which bt's models follow."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in net.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


class BarlowTwins(nn.Module):
    def __init__(self, proj, lambd, scale):
        super().__init__()
        self.backbone = Tiny(1)
        init_like_torchvision(self.backbone)
        dims = [64] + [int(w) for w in proj.split("-")]
        self.projector = projector(dims)
        self.bn = nn.BatchNorm1d(dims[-1], affine=False)
        self.lambd, self.scale = lambd, scale

    def forward(self, y1, y2):
        z1 = self.projector(self.backbone(y1))
        z2 = self.projector(self.backbone(y2))
        c = self.bn(z1).T @ self.bn(z2) / y1.shape[0]
        diag = torch.diagonal(c)
        on = (diag - 1).pow(2).sum()
        off = c.pow(2).sum() - diag.pow(2).sum()
        return self.scale * (on + self.lambd * off), diag.mean().item()


def rate(step, warm, total, batch, mult, end_factor=0.001):
    """bt's Schedule.rate (bt/optim/schedule.go)."""
    base = mult * batch / 256
    end = base * end_factor
    if step < warm:
        return base * step / warm
    if step >= total:
        return end
    q = 0.5 * (1 + math.cos(math.pi * (step - warm) / (total - warm)))
    return base * q + end * (1 - q)


def pretrain(a, images):
    model = BarlowTwins(a.projector, a.lambd, a.scale)
    weights = [p for p in model.parameters() if p.ndim != 1]
    vectors = [p for p in model.parameters() if p.ndim == 1]
    opt = LARS([{"params": weights}, {"params": vectors}], lr=0, weight_decay=a.wd)
    per_epoch = len(images) // a.batch
    total = min(a.steps, a.epochs * per_epoch) if a.steps > 0 else a.epochs * per_epoch
    warm = min(max(round(a.warmup / a.epochs * total), 0), total)
    g = torch.Generator()
    g.manual_seed(a.seed)
    loader = torch.utils.data.DataLoader(Pairs(images), batch_size=a.batch, shuffle=True, drop_last=True,
                                         num_workers=a.workers, generator=g, persistent_workers=a.workers > 0)
    print(f"pretrain: {total} steps ({per_epoch} per epoch), warm-up {warm} steps, base lr {a.lr * a.batch / 256:g}", flush=True)
    model.train()
    step, start, log = 0, time.time(), []
    while step < total:
        for y1, y2 in loader:
            lr = rate(step, warm, total, a.batch, a.lr)
            opt.param_groups[0]["lr"] = lr * 0.2
            opt.param_groups[1]["lr"] = lr * 0.0048
            opt.zero_grad()
            loss, cii = model(y1, y2)
            loss.backward()
            opt.step()
            step += 1
            if not math.isfinite(loss.item()):
                raise SystemExit(f"loss is {loss.item()} at step {step}")
            if step % a.log_every == 0 or step == total:
                el = time.time() - start
                log.append(dict(step=step, loss=loss.item(), mean_cii=cii, lr_weights=lr * 0.2, seconds=el))
                print(f"step {step:5d}/{total}  loss {loss.item():8.2f}  C_ii {cii:.3f}  {step * a.batch / el:6.1f} pairs/s  elapsed {el:.0f}s", flush=True)
            if step >= total:
                break
    return model.backbone, total, time.time() - start, log


@torch.no_grad()
def features(backbone, images, batch=512):
    backbone.eval()
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(images[i:i + batch]).float().div(255).sub(MEAN).div(STD).unsqueeze(1)
        out.append(backbone(x))
    return torch.cat(out)


@torch.no_grad()
def knn(train_x, train_y, test_x, test_y, ks=(20, 200), temperature=0.07, classes=10):
    trn = nn.functional.normalize(train_x, dim=1, eps=1e-12)
    tst = nn.functional.normalize(test_x, dim=1, eps=1e-12)
    correct = [0] * len(ks)
    for i in range(0, len(tst), 1000):
        sims, idx = (tst[i:i + 1000] @ trn.T).topk(max(ks), dim=1)
        labels = train_y[idx]
        for j, k in enumerate(ks):
            votes = torch.zeros(len(sims), classes, dtype=torch.float64)
            votes.scatter_add_(1, labels[:, :k], (sims[:, :k].double() / temperature).exp())
            correct[j] += (votes.argmax(1) == test_y[i:i + 1000]).sum().item()
    return [c / len(tst) for c in correct]


def linear_probe(train_x, train_y, test_x, test_y, epochs, seed, classes=10, batch=256, lr=0.3):
    tx = train_x.double()
    mean, var = tx.mean(0), tx.var(0, unbiased=False)
    inv = 1 / torch.sqrt(var + 1e-5)
    trn = ((tx - mean) * inv).float()
    tst = ((test_x.double() - mean) * inv).float()
    g = torch.Generator()
    g.manual_seed(seed)
    head = nn.Linear(trn.shape[1], classes)
    with torch.no_grad():
        head.weight.copy_(0.01 * torch.randn(head.weight.shape, generator=g))
        head.bias.zero_()
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=1e-6)
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        perm = torch.randperm(len(trn), generator=g)
        for b0 in range(0, len(trn) - batch + 1, batch):
            idx = perm[b0:b0 + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(head(trn[idx]), train_y[idx]).backward()
            opt.step()
    with torch.no_grad():
        return (head(tst).argmax(1) == test_y).float().mean().item()


def sample(x, y, n, seed):
    if n <= 0 or n >= len(x):
        return x, y
    idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
    return x[idx], y[idx]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--projector", default="1024-1024-1024")
    ap.add_argument("--lambd", type=float, default=0.0051)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=10, help="epochs of the full schedule")
    ap.add_argument("--warmup", type=float, default=1, help="warm-up in epochs of the full schedule")
    ap.add_argument("--lr", type=float, default=2, help="learning-rate multiplier (base lr·batch/256)")
    ap.add_argument("--wd", type=float, default=1.5e-6)
    ap.add_argument("--steps", type=int, default=0, help="step budget; the schedule is compressed to fit (0: all epochs)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--probe-epochs", type=int, default=30)
    ap.add_argument("--eval-train", type=int, default=0, help="training images for kNN and the probe, sampled (0: all)")
    ap.add_argument("--eval-test", type=int, default=0, help="test images, sampled (0: all)")
    ap.add_argument("--random", action="store_true", help="evaluate the random initialisation instead of pretraining")
    ap.add_argument("--evaluate", metavar="FILE", help="evaluate this bt checkpoint or export instead of pretraining:"
                    " bt's features under this script's protocol, to tell training from evaluation apart")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="data-loading processes")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    np.random.seed(a.seed)
    train_images, train_labels = load(a.data_dir, "train")
    test_images, test_labels = load(a.data_dir, "test")
    result = dict(args=vars(a), torch=torch.__version__)
    if a.evaluate:
        backbone, meta, _ = load_backbone(a.evaluate)
        assert meta["arch"] == "tiny", meta
        result.update(steps=0, pretrain_seconds=0)
    elif a.random:
        backbone = BarlowTwins(a.projector, a.lambd, a.scale).backbone
        result.update(steps=0, pretrain_seconds=0)
    else:
        backbone, steps, secs, log = pretrain(a, train_images)
        result.update(steps=steps, pretrain_seconds=secs, log=log, loss_end=log[-1]["loss"])
    start = time.time()
    xtr, ytr = sample(train_images, train_labels, a.eval_train, a.seed + 7)
    xte, yte = sample(test_images, test_labels, a.eval_test, a.seed + 7)
    ftr, fte = features(backbone, xtr), features(backbone, xte)
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    k20, k200 = knn(ftr, ytr, fte, yte)
    lin = linear_probe(ftr, ytr, fte, yte, a.probe_epochs, a.seed)
    result.update(knn20=k20, knn200=k200, linear_top1=lin, eval_seconds=time.time() - start,
                  eval_train=len(xtr), eval_test=len(xte))
    print(f"kNN k=20 {100 * k20:.2f}%  k=200 {100 * k200:.2f}%  linear top-1 {100 * lin:.2f}%  "
          f"(train {len(xtr)}, test {len(xte)}; eval {result['eval_seconds']:.0f}s)", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
