"""Training steps of transformers' LlamaForCausalLM (loaded from our
checkpoint) with torch's own AdamW and clip_grad_norm_.

Usage: adamw_reference.py MODEL_DIR SPEC.json
SPEC: {"micro_batches": [{"tokens": [[...]], "targets": [[...]]}, ...],
       "lrs": [lr per step], "betas": [b1, b2], "eps": e, "weight_decay": wd, "grad_clip": c}
Prints {"losses": [...], "grad_norms": [...]}.
"""
import json
import sys

import torch
from transformers import LlamaForCausalLM


def main():
    model_dir, spec_path = sys.argv[1:3]
    spec = json.load(open(spec_path))
    model, info = LlamaForCausalLM.from_pretrained(
        model_dir, torch_dtype=torch.float32, output_loading_info=True, attn_implementation="eager")
    if any(info.values()):
        sys.exit(f"transformers could not load {model_dir} cleanly: {info}")
    model.train()
    params = list(model.parameters())
    decay = [t for t in params if t.dim() >= 2]
    no_decay = [t for t in params if t.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": spec["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec["lrs"][0], betas=tuple(spec["betas"]), eps=spec["eps"], foreach=False)
    batches = [(torch.tensor(b["tokens"]), torch.tensor(b["targets"])) for b in spec["micro_batches"]]
    total = sum(t.numel() for _, t in batches)
    losses, norms = [], []
    for lr in spec["lrs"]:
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for tokens, targets in batches:
            logits = model(input_ids=tokens).logits.float()
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
            share = targets.numel() / total
            (loss * share).backward()
            step_loss += loss.item() * share
        norm = torch.nn.utils.clip_grad_norm_(params, spec["grad_clip"])
        optimizer.step()
        losses.append(step_loss)
        norms.append(float(norm))
    print(json.dumps({"losses": losses, "grad_norms": norms}))


if __name__ == "__main__":
    main()
