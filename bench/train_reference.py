"""The Python PyTorch baseline for scripts/bench-train.sh and bench-peers.sh:
transformers' LlamaForCausalLM (SDPA attention) of the same shape, torch's
fused AdamW and clipping, on random tokens, with the same torch wheel
cpt-train links; eager, or with the model under torch.compile (the first two
steps, which compile, are not timed). Prints tokens/s of the median timed step.

Usage: train_reference.py HIDDEN INTERMEDIATE LAYERS HEADS KV VOCAB SEQ MICRO ACCUM STEPS [fp32|bf16] [compile]
"""
import statistics
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    d, f, layers, heads, kv, vocab, seq, micro, accum, steps = (int(x) for x in sys.argv[1:11])
    bf16 = "bf16" in sys.argv[11:]
    compiled = "compile" in sys.argv[11:]
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=d, intermediate_size=f, num_hidden_layers=layers, num_attention_heads=heads,
                         num_key_value_heads=kv, vocab_size=vocab, max_position_embeddings=seq, rms_norm_eps=1e-5,
                         rope_theta=10000.0, tie_word_embeddings=False, attn_implementation="sdpa")
    model = LlamaForCausalLM(config).train()
    forward = torch.compile(model) if compiled else model
    params = list(model.parameters())
    decay = [t for t in params if t.dim() >= 2]
    rest = [t for t in params if t.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)

    def step():
        opt.zero_grad(set_to_none=True)
        for _ in range(accum):
            tokens = torch.randint(0, vocab, (micro, seq))
            targets = torch.randint(0, vocab, (micro, seq))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = forward(input_ids=tokens).logits
            loss = torch.nn.functional.cross_entropy(logits.float().view(-1, vocab), targets.view(-1)) / accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    step()  # warm up (and compile)
    if compiled:
        step()  # the backward graph's first run after the forward's recompile, if any
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
