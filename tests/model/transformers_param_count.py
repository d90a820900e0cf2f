"""Parameter count of transformers' own model for a config.json, built on
the meta device (shapes only, no memory), and the architecture it built.

Usage: transformers_param_count.py MODEL_DIR   (a directory with config.json)
Prints: COUNT CLASS_NAME
"""
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    config = AutoConfig.from_pretrained(sys.argv[1])
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    # A tied lm_head shares embed_tokens' tensor: parameters() yields it once.
    print(sum(p.numel() for p in model.parameters()), type(model).__name__)


if __name__ == "__main__":
    main()
