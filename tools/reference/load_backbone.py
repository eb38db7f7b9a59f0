"""Rebuilds, in PyTorch, the backbone in a file written by `bt export` (or a
bt checkpoint's backbone.* tensors) and loads it, as a PyTorch user would:

  /usr/bin/python3 tools/reference/load_backbone.py FILE [INPUTS.npy OUT.npy]

The export's metadata names what rebuilding takes: the architecture (bt's
tiny, or torchvision's resnet18/34/50), the stem ("small": a 3×3 stride-1
conv1 and no max-pool, bt's default under 64 px), the input channels, and
the preprocessing (size, mean, std). Loading is strict: every tensor must
fit, and only fc may be missing. With INPUTS.npy ([N, C, H, W] float32,
preprocessed as the metadata says) it writes the eval-mode representations
to OUT.npy, to compare with `bt eval embed`'s or bt.Encoder's.

Debian's python3-torch has no safetensors package, so the file is parsed
here: an 8-byte little-endian header length, a JSON header, then raw
little-endian tensors.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from nets import Tiny  # noqa: E402


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    state = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"])
        state[name.removeprefix("backbone.")] = t
    if "run" in meta:  # a whole checkpoint: its model settings
        model = json.loads(meta["run"])["config"]["model"]
        meta.update(arch=model["arch"], stem=model["stem"] or "imagenet", in_channels=str(model["in_channels"]))
    return state, meta


def build(meta):
    arch, cin = meta["arch"], int(meta["in_channels"])
    if arch == "tiny":
        return Tiny(cin)
    net = getattr(torchvision.models, arch)()
    width = net.conv1.out_channels
    if meta.get("stem") == "small":
        net.conv1 = torch.nn.Conv2d(cin, width, 3, 1, 1, bias=False)
        net.maxpool = torch.nn.Identity()
    elif cin != 3:
        net.conv1 = torch.nn.Conv2d(cin, width, 7, 2, 3, bias=False)
    net.fc = torch.nn.Identity()
    return net


def load(path):
    """The backbone in path, strictly loaded and in evaluation mode, its
    metadata and how many tensors it took."""
    state, meta = read(path)
    state = {k: v for k, v in state.items() if not k.startswith(("projector.", "predictor.", "optimizer."))}
    net = build(meta)
    result = net.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    assert not missing and not result.unexpected_keys, (missing, result.unexpected_keys)
    return net.eval(), meta, len(state)


def main():
    net, meta, n = load(sys.argv[1])
    print(f"{meta['arch']} ({meta.get('stem', 'imagenet')} stem, {meta['in_channels']} channels): all {n} tensors loaded;"
          f" preprocessing: size {meta.get('size', '?')}, mean {meta.get('mean', '?')}, std {meta.get('std', '?')}")
    if len(sys.argv) > 3:
        x = torch.from_numpy(np.load(sys.argv[2]).astype(np.float32))
        with torch.no_grad():
            y = net(x).flatten(1)
        np.save(sys.argv[3], y.numpy())
        print("wrote", sys.argv[3], tuple(y.shape))


if __name__ == "__main__":  # same_recipe.py imports load
    main()
