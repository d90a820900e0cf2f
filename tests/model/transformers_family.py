"""Tiny random models of each family, made and read by transformers itself.

Usage:
  transformers_family.py make FAMILY MODEL_DIR TOKENS_JSON OUT.f32
      builds a random FAMILY model (llama3, mistral or qwen2) with the options
      that family adds to Llama turned on, saves it with save_pretrained and
      writes its logits for the token rows (batch, seq, vocab) as float32.
  transformers_family.py load FAMILY MODEL_DIR TOKENS_JSON OUT.f32
      loads MODEL_DIR with AutoModelForCausalLM, fails unless it is FAMILY's
      class and every weight loaded, and writes its logits the same way.
"""
import json
import sys

import numpy as np
import torch
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

SIZES = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2,
             vocab_size=300, max_position_embeddings=256)

FAMILIES = {
    # Llama-3.1's scaled RoPE, with an original context short enough that
    # this head_dim has frequencies in all three bands; tied like Llama-3.2-1B.
    "llama3": (LlamaConfig(**SIZES, rope_theta=500000.0, tie_word_embeddings=True,
                           rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
                           bos_token_id=1, eos_token_id=[2, 3]),
               LlamaForCausalLM),
    # Mistral v0.1's sliding window, shorter than the test's rows.
    "mistral": (MistralConfig(**SIZES, sliding_window=8, tie_word_embeddings=False), MistralForCausalLM),
    # Qwen2's q/k/v biases, tied like Qwen2.5-0.5B.
    "qwen2": (Qwen2Config(**SIZES, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                          use_sliding_window=False), Qwen2ForCausalLM),
}


def logits_of(model, tokens_json, out):
    model.eval()
    tokens = torch.tensor(json.loads(tokens_json), dtype=torch.long)
    with torch.no_grad():
        logits = model(input_ids=tokens).logits.float()
    np.ascontiguousarray(logits.numpy(), dtype="<f4").tofile(out)


def main():
    command, family, model_dir, tokens_json, out = sys.argv[1:6]
    config, cls = FAMILIES[family]
    if command == "make":
        torch.manual_seed(0)
        config._attn_implementation = "eager"
        model = cls(config)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0.0, 0.1)  # transformers initialises biases to 0, which would test nothing
                elif name.endswith("norm.weight"):
                    p.normal_(1.0, 0.1)
        model.save_pretrained(model_dir)
        logits_of(model, tokens_json, out)
    else:
        model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True,
                                                           attn_implementation="eager")
        problems = {k: v for k, v in info.items() if v}
        if problems:
            sys.exit(f"transformers could not load {model_dir} cleanly: {problems}")
        if type(model) is not cls:
            sys.exit(f"{model_dir} loads as {type(model).__name__}, not {cls.__name__}")
        logits_of(model, tokens_json, out)


if __name__ == "__main__":
    main()
