"""Python PyTorch eager baseline for scripts/bench-train.sh: the same Llama
math (tests/model/hf_llama_reference.py), AdamW and clipping, on random
tokens of the same shapes. Prints tokens/s over the timed steps.

Usage: train_reference.py HIDDEN INTERMEDIATE LAYERS HEADS KV VOCAB SEQ MICRO ACCUM STEPS
"""
import math
import os
import sys
import statistics
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "model"))
import hf_llama_reference as ref  # noqa: E402


def main():
    d, f, layers, heads, kv, vocab, seq, micro, accum, steps = (int(x) for x in sys.argv[1:11])
    cfg = {"hidden_size": d, "num_attention_heads": heads, "num_key_value_heads": kv, "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "num_hidden_layers": layers}
    hd = d // heads
    torch.manual_seed(0)
    shapes = {"model.embed_tokens.weight": (vocab, d), "model.norm.weight": (d,), "lm_head.weight": (vocab, d)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes.update({p + "self_attn.q_proj.weight": (heads * hd, d), p + "self_attn.k_proj.weight": (kv * hd, d),
                       p + "self_attn.v_proj.weight": (kv * hd, d), p + "self_attn.o_proj.weight": (d, heads * hd),
                       p + "mlp.gate_proj.weight": (f, d), p + "mlp.up_proj.weight": (f, d),
                       p + "mlp.down_proj.weight": (d, f), p + "input_layernorm.weight": (d,),
                       p + "post_attention_layernorm.weight": (d,)})
    w = {k: (torch.randn(s) * 0.02 if len(s) == 2 else torch.ones(s)).requires_grad_(True) for k, s in shapes.items()}
    decay = [t for t in w.values() if t.dim() >= 2]
    rest = [t for t in w.values() if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    def step():
        opt.zero_grad(set_to_none=True)
        for _ in range(accum):
            tokens = torch.randint(0, vocab, (micro, seq))
            targets = torch.randint(0, vocab, (micro, seq))
            logits = ref.forward(w, cfg, tokens)
            loss = torch.nn.functional.cross_entropy(logits.view(-1, vocab), targets.view(-1)) / accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), 1.0)
        opt.step()
    step()  # warm up
    # The median step, as for cpt-train: one stall on a shared machine
    # does not move it.
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    print(f"{accum * micro * seq / statistics.median(seconds):.1f}")


if __name__ == "__main__":
    main()
