"""Our checkpoint through Hugging Face transformers itself.

Usage: transformers_llama.py MODEL_DIR TOKENS_JSON OUT.f32

Loads MODEL_DIR with LlamaForCausalLM.from_pretrained, fails when any key
is missing, unexpected or mismatched, and writes the logits of the token
rows (batch, seq, vocab) as raw little-endian float32.
"""
import json
import sys

import numpy as np
import torch
from transformers import LlamaForCausalLM


def main():
    model_dir, tokens_json, out = sys.argv[1:4]
    model, info = LlamaForCausalLM.from_pretrained(
        model_dir, torch_dtype=torch.float32, output_loading_info=True, attn_implementation="eager")
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"transformers could not load {model_dir} cleanly: {problems}")
    model.eval()
    tokens = torch.tensor(json.loads(tokens_json), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=tokens).logits.float()
    np.ascontiguousarray(logits.numpy(), dtype="<f4").tofile(out)


if __name__ == "__main__":
    main()
