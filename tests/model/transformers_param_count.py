"""Parameter count of transformers' own LlamaForCausalLM for a shape, built on
the meta device (shapes only, no memory).

Usage: transformers_param_count.py HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS VOCAB
"""
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    d, f, layers, heads, kv_heads, vocab = (int(x) for x in sys.argv[1:7])
    config = LlamaConfig(hidden_size=d, intermediate_size=f, num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv_heads, vocab_size=vocab, tie_word_embeddings=False)
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    print(sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
