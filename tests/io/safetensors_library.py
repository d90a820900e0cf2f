"""The safetensors library itself on our files, every dtype we support.

  safetensors_library.py read FILE
      opens FILE with safe_open and prints, per tensor, its dtype (as the
      header spells it), shape and bytes (hex), and the metadata, as JSON.
  safetensors_library.py write FILE
      writes with safetensors.torch.save_file one tensor per dtype, named
      after it, of shape (2, 3), whose bytes are pattern(name) below, and
      metadata {"written_by": "safetensors"}.
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3": torch.float8_e4m3fn, "I16": torch.int16, "U16": torch.uint16, "F16": torch.float16,
    "BF16": torch.bfloat16, "I32": torch.int32, "U32": torch.uint32, "F32": torch.float32,
    "I64": torch.int64, "U64": torch.uint64, "F64": torch.float64,
}
NAMES = {dtype: name for name, dtype in DTYPES.items()}


def pattern(name, count):
    """Byte j of tensor `name`: (31 j + len(name)) mod 256; 0/1 for BOOL."""
    data = [(31 * j + len(name)) % 256 for j in range(count)]
    return [b % 2 for b in data] if name == "BOOL" else data


def read(path):
    out = {"tensors": {}}
    with safe_open(path, framework="pt") as f:
        out["metadata"] = f.metadata()
        for key in f.keys():
            t = f.get_tensor(key)
            raw = t.contiguous().view(-1).view(torch.uint8) if t.dim() else t.reshape(1).view(torch.uint8)
            out["tensors"][key] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "bytes": bytes(raw.tolist()).hex()}
    print(json.dumps(out))


def write(path):
    tensors = {}
    for name, dtype in DTYPES.items():
        itemsize = torch.empty((), dtype=dtype).element_size()
        raw = torch.tensor(pattern(name, 6 * itemsize), dtype=torch.uint8)
        tensors[name] = raw.view(dtype).reshape(2, 3)
    save_file(tensors, path, metadata={"written_by": "safetensors"})


if __name__ == "__main__":
    {"read": read, "write": write}[sys.argv[1]](sys.argv[2])
