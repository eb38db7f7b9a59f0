"""Loads a backbone exported by `bt eval`/bt.ExportBackbone (safetensors)
into torchvision's ResNet, the way a PyTorch user would, and reports what
matched: /usr/bin/python3 tools/reference/load_backbone.py FILE ARCH

Debian's python3-torch has no safetensors package, so the file is parsed
here: an 8-byte little-endian header length, a JSON header, then raw
little-endian tensors.
"""
import json
import struct
import sys

import torch
import torchvision

path, arch = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    raw = f.read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
state = {}
for name, info in header.items():
    if name == "__metadata__":
        continue
    assert info["dtype"] == "F32", (name, info["dtype"])
    a, b = info["data_offsets"]
    state[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"])
model = getattr(torchvision.models, arch)()
result = model.load_state_dict(state, strict=False)
print("missing:", result.missing_keys)
print("unexpected:", result.unexpected_keys)
model.eval()
with torch.no_grad():
    out = torch.nn.Sequential(*list(model.children())[:-1])(torch.randn(2, 3, 64, 64)).flatten(1)
print("representation", tuple(out.shape), "finite", bool(torch.isfinite(out).all()))
