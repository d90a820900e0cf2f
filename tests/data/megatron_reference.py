"""An independent implementation of Megatron-LM's MMapIndexedDataset layout
(megatron/core/datasets/indexed_dataset.py), in numpy, for the tests.

  megatron_reference.py write PREFIX DTYPE_CODE DOC_JSON   writes a dataset
      DOC_JSON: [[doc0 sequence lengths...], ...] -- tokens are 0,1,2,... mod 50000
  megatron_reference.py read PREFIX                         prints a JSON summary
"""
import json
import struct
import sys

import numpy as np

MAGIC = b"MMIDIDX\x00\x00"
DTYPES = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 8: np.uint16}


def write(prefix, code, docs):
    dtype = DTYPES[code]
    lengths, pointers, doc_indices, tokens = [], [], [0], []
    pointer, next_token = 0, 0
    for doc in docs:
        for length in doc:
            seq = (np.arange(next_token, next_token + length) % 50000).astype(dtype)
            next_token += length
            tokens.append(seq)
            lengths.append(length)
            pointers.append(pointer)
            pointer += length * np.dtype(dtype).itemsize
        doc_indices.append(len(lengths))
    with open(prefix + ".bin", "wb") as f:
        for seq in tokens:
            f.write(seq.tobytes(order="C"))
    with open(prefix + ".idx", "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", code))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(doc_indices)))
        f.write(np.array(lengths, dtype=np.int32).tobytes(order="C"))
        f.write(np.array(pointers, dtype=np.int64).tobytes(order="C"))
        f.write(np.array(doc_indices, dtype=np.int64).tobytes(order="C"))


def read(prefix):
    with open(prefix + ".idx", "rb") as f:
        assert f.read(9) == MAGIC, "bad magic"
        (version,) = struct.unpack("<Q", f.read(8))
        assert version == 1
        (code,) = struct.unpack("<B", f.read(1))
        (seq_count,) = struct.unpack("<Q", f.read(8))
        (doc_count,) = struct.unpack("<Q", f.read(8))
        offset = f.tell()
    buffer = np.memmap(prefix + ".idx", mode="r", order="C")
    lengths = np.frombuffer(buffer, dtype=np.int32, count=seq_count, offset=offset)
    pointers = np.frombuffer(buffer, dtype=np.int64, count=seq_count, offset=offset + lengths.nbytes)
    doc_indices = np.frombuffer(buffer, dtype=np.int64, count=doc_count,
                                offset=offset + lengths.nbytes + pointers.nbytes)
    data = np.memmap(prefix + ".bin", mode="r", order="C")
    dtype = DTYPES[code]
    sequences = [np.frombuffer(data, dtype=dtype, count=int(n), offset=int(p)).tolist()
                 for n, p in zip(lengths, pointers)]
    print(json.dumps({"dtype_code": code, "sequences": sequences, "document_indices": doc_indices.tolist()}))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
    else:
        read(sys.argv[2])
