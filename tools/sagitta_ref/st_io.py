"""A byte-deterministic safetensors writer.

safetensors' own writer stores ``__metadata__`` through a Rust HashMap, so its key order (and the
file's bytes) changes from run to run. This writer emits the same layout with the metadata keys
sorted, tensors ordered by (alignment desc, name) and data packed in that order, so regenerating a
fixture gives an identical file. Files read back with safetensors.safe_open / load_file.
"""

from __future__ import annotations

import json
import struct

import torch

_DTYPES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def save_file(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None):
    names = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    header: dict = {}
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    chunks = []
    offset = 0
    for name in names:
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name}: unsupported dtype {t.dtype}")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for c in chunks:
            f.write(c)
