"""A model saved by transformers' own save_pretrained, and transformers' loss.

  transformers_saved.py save DIR DTYPE VOCAB
      a random LlamaForCausalLM (hidden 64, 2 layers, 8 heads, 2 KV heads,
      norm weights away from 1) saved with save_pretrained in DTYPE
      (float32 | bfloat16), sharded (fails if it is not).
  transformers_saved.py loss DIR JSONL SPM_MODEL SEQ_LEN
      tokenizes each document of JSONL with SentencePiece as BOS ids EOS,
      cuts the stream into windows of SEQ_LEN + 1 tokens that overlap by one
      (as `cpt-train eval` does), and prints transformers' mean next-token
      loss over them (fp32) as {"loss", "tokens"}.
"""
import json
import os
import sys

import sentencepiece
import torch
from transformers import LlamaConfig, LlamaForCausalLM


def save(directory, dtype, vocab):
    config = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=8,
                         num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=64, rms_norm_eps=1e-5,
                         rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    model.to(getattr(torch, dtype)).save_pretrained(directory, max_shard_size="200KB")
    if not os.path.exists(os.path.join(directory, "model.safetensors.index.json")):
        sys.exit(f"save_pretrained did not shard {directory}")


def loss(directory, jsonl, spm_model, seq_len):
    sp = sentencepiece.SentencePieceProcessor(model_file=spm_model)
    stream = []
    for line in open(jsonl, encoding="utf-8"):
        stream += [sp.bos_id()] + sp.encode(json.loads(line)["text"]) + [sp.eos_id()]
    model = LlamaForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    windows = (len(stream) - 1) // seq_len
    total = 0.0
    with torch.no_grad():
        for w in range(windows):
            ids = torch.tensor([stream[w * seq_len:(w + 1) * seq_len + 1]])
            total += model(input_ids=ids, labels=ids).loss.item() * seq_len
    print(json.dumps({"loss": total / (windows * seq_len), "tokens": windows * seq_len}))


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        loss(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
