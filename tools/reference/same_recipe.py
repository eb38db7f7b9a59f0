"""Same-recipe PyTorch reference for bt's learning quality (docs/quality.md,
issue 14): trains bt's `tiny` network on Fashion-MNIST with bt's recipe and
evaluates it with bt's protocol, so that bt's accuracy at a budget has a
reference beside it.

  /usr/bin/python3 tools/reference/same_recipe.py --steps 703 --seed 1 --out ref.json

matches

  bt pretrain -arch tiny -batch 256 -projector 1024-1024-1024 \\
      -epochs 10 -warmup 1 -lr 2 -steps 703 -seed 1
  bt eval -checkpoint … -probe-epochs 30 knn linear -fast

and bt's `short` recipe (bt/train/recipe.go) on bt's validation split,

  /usr/bin/python3 tools/reference/same_recipe.py --epochs 3 --lr 32 --warmup 5% \\
      --crop-min 0.4 --val-fraction 0.1 --split both --seed 1 --out ref.json

matches

  bt pretrain -recipe short -batch 256 -projector 1024-1024-1024 -epochs 3 \\
      -val-fraction 0.1 -seed 1
  bt eval -checkpoint … -split validation -probe-epochs 30 knn linear -fast
  bt eval -checkpoint … -split test -probe-epochs 30 knn linear -fast

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
  round(warmup/epochs · steps) steps (warm-up in epochs of the full
  schedule), round(share · steps) (a share of the run, "5%") or the steps
  given ("500steps"), rounded half away from zero as Go's math.Round, then
  a cosine to 0.001 of the base at the budget's end; weights ×0.2, biases
  and BatchNorm ×0.0048.
- augmentations (pipeline/preset.go, the fashion-mnist preset), here by
  torchvision on PIL images as the official code: RandomResizedCrop(28,
  scale crop-min–1 (0.08 unless --crop-min), ratio 3/4–4/3, bilinear), flip 0.5, ColorJitter(brightness
  0.4, contrast 0.4) with p 0.8, no grayscale, no blur, solarize p 0 / 0.2
  (view A / B), normalised by mean 0.2860 and std 0.3530.
- data: shuffled each epoch, batches of 256, the last partial one dropped.
- validation split (bt/train DataConfig, pipeline.Holdout): with
  --val-fraction, round(fraction · 60000) training images drawn by
  --val-seed, the very images bt holds out (valsplit.py, checked against
  pipeline.Holdout by TestHoldoutMatchesPython), are left out of
  pretraining and of kNN's and the probe's training set; figures are taken
  on them (validation), on the test split, or both.
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
from valsplit import count as holdout_count, go_round, holdout  # noqa: E402

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


def view(solarize_p, crop_min):
    ops = [
        T.RandomResizedCrop(28, scale=(crop_min, 1.0), ratio=(3 / 4, 4 / 3), interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(0.5),
        T.RandomApply([T.ColorJitter(brightness=0.4, contrast=0.4)], p=0.8),
    ]
    if solarize_p > 0:
        ops.append(T.RandomSolarize(128, p=solarize_p))
    return T.Compose(ops + [T.ToTensor(), T.Normalize([MEAN], [STD])])


class Pairs(torch.utils.data.Dataset):
    def __init__(self, images, crop_min):
        self.images = images
        self.a, self.b = view(0.0, crop_min), view(0.2, crop_min)

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


def parse_warmup(text):
    """bt's Warmup text (bt/optim/schedule.go): "1" epochs of the full
    schedule, "5%" a share of the run or "500steps"; (value, unit)."""
    s, unit, scale = text.strip(), "epochs", 1.0
    if s.endswith("%"):
        s, unit, scale = s[:-1], "fraction", 0.01
    elif s.endswith("steps"):
        s, unit = s[:-5], "steps"
    elif s.endswith("ep"):
        s = s[:-2]
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"warm-up {text!r}: want epochs (1), a share of the run (5%) or steps (500steps)")
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"warm-up {text!r}: must be a finite number ≥ 0")
    if unit == "fraction" and v > 100:
        raise argparse.ArgumentTypeError(f"warm-up {text!r}: a share of the run is at most 100%")
    if unit == "steps" and v != math.trunc(v):
        raise argparse.ArgumentTypeError(f"warm-up {text!r}: steps are whole")
    return v * scale, unit


def warmup_steps(warmup, total, epochs):
    """bt's Warmup.Steps: the warm-up in steps of a run of total steps whose
    full schedule is epochs long, never more than the run."""
    v, unit = warmup
    n = {"epochs": v / max(epochs, 1) * total, "fraction": v * total, "steps": v}[unit]
    return max(min(go_round(n), total), 0)


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
    warm = warmup_steps(a.warmup, total, a.epochs)
    g = torch.Generator()
    g.manual_seed(a.seed)
    loader = torch.utils.data.DataLoader(Pairs(images, a.crop_min), batch_size=a.batch, shuffle=True, drop_last=True,
                                         num_workers=a.workers, generator=g, persistent_workers=a.workers > 0)
    print(f"pretrain: {len(images)} images, {total} steps ({per_epoch} per epoch), warm-up {warm} steps, "
          f"base lr {a.lr * a.batch / 256:g}, crops from {a.crop_min:g}", flush=True)
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


def linear_probe(train_x, train_y, tests, epochs, seed, classes=10, batch=256, lr=0.3):
    """Trains the probe once; its top-1 on each (x, y) of tests."""
    tx = train_x.double()
    mean, var = tx.mean(0), tx.var(0, unbiased=False)
    inv = 1 / torch.sqrt(var + 1e-5)
    trn = ((tx - mean) * inv).float()
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
        return [(head(((x.double() - mean) * inv).float()).argmax(1) == y).float().mean().item() for x, y in tests]


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
    ap.add_argument("--warmup", type=parse_warmup, default="1",
                    help="warm-up as bt's -warmup: epochs of the full schedule (1), a share of the run (5%%) or steps (500steps)")
    ap.add_argument("--lr", type=float, default=2, help="learning-rate multiplier (base lr·batch/256)")
    ap.add_argument("--wd", type=float, default=1.5e-6)
    ap.add_argument("--crop-min", type=float, default=0.08, help="random-resized-crop minimum area, as bt's recipes' crop minimum")
    ap.add_argument("--steps", type=int, default=0, help="step budget; the schedule is compressed to fit (0: all epochs)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--probe-epochs", type=int, default=30)
    ap.add_argument("--eval-train", type=int, default=0, help="training images for kNN and the probe, sampled (0: all)")
    ap.add_argument("--eval-test", type=int, default=0, help="images of each evaluated split, sampled (0: all)")
    ap.add_argument("--val-fraction", type=float, help="share of the training images held out of pretraining and of"
                    " kNN's and the probe's training as bt's validation split (default 0, or with --evaluate the checkpoint's)")
    ap.add_argument("--val-seed", type=int, help="the seed that draws the validation split's images (default 0, or the checkpoint's)")
    ap.add_argument("--split", choices=["test", "validation", "both"], default="test",
                    help="the split the figures are taken on (validation needs a validation split)")
    ap.add_argument("--random", action="store_true", help="evaluate the random initialisation instead of pretraining")
    ap.add_argument("--evaluate", metavar="FILE", help="evaluate this bt checkpoint or export instead of pretraining:"
                    " bt's features under this script's protocol, to tell training from evaluation apart")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="data-loading processes")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()

    if not 0 < a.crop_min <= 1:
        ap.error(f"--crop-min {a.crop_min:g}: want a share of the image in (0, 1]")
    if a.out and os.path.exists(a.out):
        ap.error(f"--out {a.out}: exists; name another file")
    meta = None
    if a.evaluate:
        backbone, meta, _ = load_backbone(a.evaluate)
        if meta["arch"] != "tiny":
            ap.error(f"--evaluate {a.evaluate}: a {meta['arch']} network; this reference is tiny's")
    elif a.val_fraction is None and a.val_seed is not None:
        ap.error("--val-seed draws the images --val-fraction holds out; give both")
    if a.val_fraction is None:
        recorded = json.loads(meta["run"])["config"]["data"].get("validation", {}) if meta and "run" in meta else {}
        a.val_fraction, a.val_seed = recorded.get("fraction", 0.0), recorded.get("seed", 0)
    a.val_seed = a.val_seed or 0
    if a.val_seed < 0:
        ap.error(f"--val-seed {a.val_seed}: want a seed ≥ 0")
    if not 0 <= a.val_fraction < 1:
        ap.error(f"--val-fraction {a.val_fraction:g}: want a share in [0, 1)")
    if a.split != "test" and a.val_fraction == 0:
        ap.error(f"--split {a.split}: no training images are held out; give --val-fraction")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    np.random.seed(a.seed)
    train_images, train_labels = load(a.data_dir, "train")
    test_images, test_labels = load(a.data_dir, "test")
    result = dict(args=vars(a), torch=torch.__version__)
    splits = {"test": (test_images, test_labels)}
    if a.val_fraction > 0:
        n = holdout_count(a.val_fraction, len(train_images))
        try:
            keep, held = holdout(len(train_images), n, a.val_seed)
        except ValueError as e:
            ap.error(f"--val-fraction {a.val_fraction:g}: {e}")
        splits["validation"] = (train_images[held], train_labels[held])
        train_images, train_labels = train_images[keep], train_labels[keep]
        result.update(validation=dict(fraction=a.val_fraction, seed=a.val_seed, images=n, first=held[:5]))
        print(f"split: validation split of {n} images, {100 * a.val_fraction:g}% of the training images drawn by seed "
              f"{a.val_seed} (first {held[:5]}), held out of pretraining and of kNN's and the probe's training", flush=True)
    if a.split != "both":
        splits = {a.split: splits[a.split]}
    if a.evaluate:
        result.update(steps=0, pretrain_seconds=0)
    elif a.random:
        backbone = BarlowTwins(a.projector, a.lambd, a.scale).backbone
        result.update(steps=0, pretrain_seconds=0)
    else:
        backbone, steps, secs, log = pretrain(a, train_images)
        result.update(steps=steps, pretrain_seconds=secs, log=log, loss_end=log[-1]["loss"])
    start = time.time()
    xtr, ytr = sample(train_images, train_labels, a.eval_train, a.seed + 7)
    ftr, ytr = features(backbone, xtr), torch.from_numpy(ytr)
    tests = {}
    for name, (x, y) in splits.items():
        x, y = sample(x, y, a.eval_test, a.seed + 7)
        tests[name] = features(backbone, x), torch.from_numpy(y)
    lins = linear_probe(ftr, ytr, list(tests.values()), a.probe_epochs, a.seed)
    result.update(eval_train=len(xtr))
    for (name, (fte, yte)), lin in zip(tests.items(), lins):
        k20, k200 = knn(ftr, ytr, fte, yte)
        # Keys as bt's metrics: the test split's bare, the validation split's val_.
        p = "val_" if name == "validation" else ""
        result.update({p + "knn20": k20, p + "knn200": k200, p + "linear_top1": lin, "eval_" + name: len(yte)})
        print(f"{name + ':':11s} kNN k=20 {100 * k20:.2f}%  k=200 {100 * k200:.2f}%  linear top-1 {100 * lin:.2f}%  "
              f"(train {len(xtr)}, {name} {len(yte)})", flush=True)
    result.update(eval_seconds=time.time() - start)
    print(f"eval {result['eval_seconds']:.0f}s", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
