"""Byte-level BPE tokenizer.json files made by HF tokenizers, and its ids.

Usage:
  hf_bpe.py corpus OUT.jsonl
      documents from Debian's packaged text: GCIDE and FOLDOC dictionary
      entries (English, computing), and the X11 Compose table's characters
      (Latin with diacritics, Greek, Cyrillic, Hebrew, Hangul, kana, CJK,
      combining marks) mixed into sentences, some of them decomposed (NFD)
      so that NFC has work to do.
  hf_bpe.py make STYLE OUT_DIR CORPUS.jsonl [VOCAB_SIZE]
      trains a byte-level BPE of STYLE: llama3 (Llama-3's split regex,
      ignore_merges, a BOS template, <|begin_of_text|> / <|end_of_text|>),
      qwen2 (Qwen2's regex, NFC, no BOS, <|endoftext|>) or gpt2 (ByteLevel's
      own regex, no specials); writes OUT_DIR/tokenizer.json (and
      tokenizer_config.json for llama3 and qwen2).
  hf_bpe.py encode TOKENIZER.json CORPUS.jsonl OUT.json
      the ids HF tokenizers gives each document (encode, special tokens
      added as the tokenizer says), and the single-thread encode time.
"""
import gzip
import json
import random
import sys
import time
import unicodedata

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)"
         r"|\s+")


def dictionary_entries(path, limit):
    out, body = [], []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip() and not line[0].isspace():
                if body:
                    out.append("\n".join(body))
                    if len(out) >= limit:
                        break
                body = [line.strip()]
            elif line.strip():
                body.append(line.strip())
    return out


def corpus(out_path):
    docs = dictionary_entries("/usr/share/dictd/gcide.dict.dz", 7000)
    docs += dictionary_entries("/usr/share/dictd/foldoc.dict.dz", 2500)
    rng = random.Random(7)
    # The characters of the Compose table, grouped by script.
    chars = {}
    with open("/usr/share/X11/locale/en_US.UTF-8/Compose", encoding="utf-8") as f:
        for line in f:
            if '"' not in line:
                continue
            text = line.split('"')[1]
            for ch in text:
                if ord(ch) > 127:
                    chars.setdefault(unicodedata.name(ch, "?").split(" ")[0], []).append(ch)
    scripts = sorted(chars)
    words = [w for d in docs[:2000] for w in d.split()]
    for i in range(1500):
        script = scripts[i % len(scripts)]
        pieces = []
        for _ in range(rng.randint(5, 40)):
            if rng.random() < 0.5:
                pieces.append("".join(rng.choice(chars[script]) for _ in range(rng.randint(1, 6))))
            else:
                pieces.append(rng.choice(words))
            pieces.append(rng.choice([" ", " ", " ", ", ", ". ", "\n", "  ", "\t", "'s ", " 123 ", "4567"]))
        text = "".join(pieces)
        if i % 3 == 0:
            text = unicodedata.normalize("NFD", text)  # combining sequences for NFC to compose
        docs.append(text)
    with open(out_path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")


def make(style, out_dir, corpus_path, vocab_size=4000):
    import os
    os.makedirs(out_dir, exist_ok=True)
    texts = [json.loads(line)["text"] for line in open(corpus_path, encoding="utf-8")]
    tokenizer = Tokenizer(models.BPE(ignore_merges=style == "llama3"))
    if style == "gpt2":
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        specials = []
    else:
        pattern = LLAMA3 if style == "llama3" else QWEN2
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = ["<|begin_of_text|>", "<|end_of_text|>"] if style == "llama3" else ["<|endoftext|>", "<|im_start|>"]
    if style == "qwen2":
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    if style == "llama3":
        bos = tokenizer.token_to_id("<|begin_of_text|>")
        tokenizer.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                          special_tokens=[("<|begin_of_text|>", bos)])])
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    if style != "gpt2":
        config = ({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"} if style == "llama3"
                  else {"bos_token": None, "eos_token": "<|endoftext|>"})
        json.dump(config, open(os.path.join(out_dir, "tokenizer_config.json"), "w"))


def encode(tokenizer_path, corpus_path, out_path):
    tokenizer = Tokenizer.from_file(tokenizer_path)
    texts = [json.loads(line)["text"] for line in open(corpus_path, encoding="utf-8")]
    start = time.perf_counter()
    ids = [tokenizer.encode(t).ids for t in texts]
    seconds = time.perf_counter() - start
    json.dump({"ids": ids, "seconds": seconds, "tokens": sum(len(i) for i in ids)}, open(out_path, "w"))


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "corpus":
        corpus(sys.argv[2])
    elif command == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 4000)
    else:
        encode(sys.argv[2], sys.argv[3], sys.argv[4])
