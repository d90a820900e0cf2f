"""Writes PREFIX.bin/.idx: a Megatron indexed dataset of COUNT random
documents (200-2000 uint16 tokens, ids 3..7999), seed 0. The benchmarks'
speed and memory do not depend on the text.

usage: random_shard.py PREFIX COUNT
"""
import struct
import sys

import numpy as np

prefix, count = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
lengths = rng.integers(200, 2000, size=count)
tokens = rng.integers(3, 8000, size=int(lengths.sum())).astype(np.uint16)
tokens.tofile(f"{prefix}.bin")
with open(f"{prefix}.idx", "wb") as f:
    f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", 8))
    f.write(struct.pack("<Q", len(lengths)) + struct.pack("<Q", len(lengths) + 1))
    f.write(lengths.astype(np.int32).tobytes())
    f.write((np.concatenate([[0], np.cumsum(lengths)[:-1]]) * 2).astype(np.int64).tobytes())
    f.write(np.arange(len(lengths) + 1, dtype=np.int64).tobytes())
