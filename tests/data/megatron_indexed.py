"""megatron-core's own IndexedDataset and IndexedDatasetBuilder on our shards.

  megatron_indexed.py write PREFIX DTYPE_CODES DOC_JSON
      writes PREFIX<code>.bin/.idx with megatron-core's builder for each of
      the comma-separated dtype codes (one process: megatron-core takes
      seconds to import). DOC_JSON is
      [[sequence lengths of document 0...], ...]; token i of the dataset is
      i (mod 256 for the 1-byte dtypes).
  megatron_indexed.py read PREFIX
      reads PREFIX with megatron-core and prints {"dtype_code", "sequences",
      "document_indices"} as JSON.
"""
import json
import sys
import warnings

import numpy as np

# megatron-core warns that Transformer Engine and Apex are absent: irrelevant to its dataset code.
warnings.filterwarnings("ignore")
from megatron.core.datasets.indexed_dataset import DType, IndexedDataset, IndexedDatasetBuilder  # noqa: E402

import torch  # noqa: E402


def write(prefix, code, docs):
    dtype = DType(code).name
    builder = IndexedDatasetBuilder(prefix + ".bin", dtype=getattr(np, dtype))
    next_token = 0
    for doc in docs:
        for length in doc:
            ids = np.arange(next_token, next_token + length, dtype=np.int64)
            if np.dtype(dtype).itemsize == 1:
                ids %= 256
            builder.add_item(torch.from_numpy(ids))
            next_token += length
        builder.end_document()
    builder.finalize(prefix + ".idx")


def read(prefix):
    dataset = IndexedDataset(prefix, mmap=True)
    sequences = [dataset[i].tolist() for i in range(len(dataset))]
    print(json.dumps({
        "dtype_code": DType.code_from_dtype(dataset.index.dtype),
        "sequences": sequences,
        "document_indices": dataset.document_indices.tolist(),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        for code in sys.argv[3].split(","):
            write(sys.argv[2] + code, int(code), json.loads(sys.argv[4]))
    else:
        read(sys.argv[2])
