"""Independent reference of Hugging Face Llama math (transformers'
modeling_llama: RMSNorm in fp32, rotate_half RoPE, repeat_kv GQA, causal
softmax, SwiGLU), in python3-torch, reading a checkpoint's safetensors
directly.

Usage: hf_llama_reference.py MODEL_DIR TOKENS_JSON OUT.f32
Writes the logits (batch, seq, vocab) as raw little-endian float32.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch


def load(model_dir):
    tensors = {}
    index = os.path.join(model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    for name in files:
        data = open(os.path.join(model_dir, name), "rb").read()
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + n])
        body = data[8 + n:]
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            assert entry["dtype"] == "F32", entry["dtype"]
            begin, end = entry["data_offsets"]
            arr = np.frombuffer(body[begin:end], dtype=np.float32).reshape(entry["shape"])
            tensors[key] = torch.from_numpy(arr.copy())
    return tensors


def rms_norm(x, weight, eps):
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def forward(w, cfg, tokens):
    batch, seq = tokens.shape
    d = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    hd = d // heads
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta", 10000.0)

    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    pos = torch.arange(seq).float()
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]

    h = w["model.embed_tokens.weight"][tokens]
    causal = torch.full((seq, seq), float("-inf")).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = (x @ w[p + "self_attn.q_proj.weight"].T).view(batch, seq, heads, hd).transpose(1, 2)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).view(batch, seq, kv, hd).transpose(1, 2)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).view(batch, seq, kv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = heads // kv
        k = k[:, :, None].expand(batch, kv, rep, seq, hd).reshape(batch, heads, seq, hd)
        v = v[:, :, None].expand(batch, kv, rep, seq, hd).reshape(batch, heads, seq, hd)
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd) + causal
        attn = torch.softmax(scores.float(), dim=-1) @ v
        attn = attn.transpose(1, 2).reshape(batch, seq, d)
        h = h + attn @ w[p + "self_attn.o_proj.weight"].T
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate = torch.nn.functional.silu(x @ w[p + "mlp.gate_proj.weight"].T)
        h = h + (gate * (x @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
    h = rms_norm(h, w["model.norm.weight"], eps)
    return (h @ w["lm_head.weight"].T).float()


def main():
    model_dir, tokens_json, out = sys.argv[1:4]
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = load(model_dir)
    tokens = torch.tensor(json.loads(tokens_json), dtype=torch.long)
    forward(w, cfg, tokens).numpy().astype("<f4").tofile(out)


if __name__ == "__main__":
    with torch.no_grad():
        main()
