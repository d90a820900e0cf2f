"""Independent reference for parameter counts: the HF Llama module tree built
from plain torch.nn layers on the meta device (shapes only, no memory).

Usage: /usr/bin/python3 reference_param_count.py HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS VOCAB
"""
import sys

import torch
from torch import nn

META = torch.device("meta")


def linear(n_in, n_out):
    return nn.Linear(n_in, n_out, bias=False, device=META)


def block(d, f, heads, kv_heads):
    head_dim = d // heads
    layer = nn.Module()
    layer.q_proj = linear(d, heads * head_dim)
    layer.k_proj = linear(d, kv_heads * head_dim)
    layer.v_proj = linear(d, kv_heads * head_dim)
    layer.o_proj = linear(heads * head_dim, d)
    layer.gate_proj = linear(d, f)
    layer.up_proj = linear(d, f)
    layer.down_proj = linear(f, d)
    layer.input_layernorm = nn.Parameter(torch.ones(d, device=META))
    layer.post_attention_layernorm = nn.Parameter(torch.ones(d, device=META))
    return layer


def main():
    d, f, layers, heads, kv_heads, vocab = (int(x) for x in sys.argv[1:7])
    model = nn.Module()
    model.embed_tokens = nn.Embedding(vocab, d, device=META)
    model.layers = nn.ModuleList(block(d, f, heads, kv_heads) for _ in range(layers))
    model.norm = nn.Parameter(torch.ones(d, device=META))
    model.lm_head = linear(d, vocab)
    print(sum(p.numel() for p in model.parameters()))


if __name__ == "__main__":
    main()
