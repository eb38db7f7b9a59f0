"""Writes a torchvision ResNet's state dict as safetensors for bt:
/usr/bin/python3 tools/reference/torchvision_to_safetensors.py ARCH OUT [WEIGHTS.pth]

Without WEIGHTS the model is torchvision's random initialisation. The file
keeps every tensor, fc and num_batches_tracked included, as a converted
state dict would; bt reads the ones its backbone needs (bt pretrain -init,
bt eval, bt.train.LoadCheckpoint).
"""
import json
import struct
import sys

import torch


def write(path, state):
    """Writes a state dict (name -> tensor) as safetensors: an 8-byte
    little-endian header length, a JSON header, then the raw tensors.
    Debian's python3-torch has no safetensors package."""
    header, blobs, offset = {}, [], 0
    for name, t in state.items():
        t = t.detach().contiguous()
        if t.dtype == torch.float64:
            t = t.to(torch.float32)
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    import torchvision

    arch, out = sys.argv[1], sys.argv[2]
    model = getattr(torchvision.models, arch)()
    if len(sys.argv) > 3:
        model.load_state_dict(torch.load(sys.argv[3], map_location="cpu"))
    write(out, model.state_dict())
    print("wrote", out, len(model.state_dict()), "tensors")
