#!/usr/bin/env bash
# tokenizer.json (byte-level BPE, Llama-3 and Qwen2 style) throughput:
# `cpt-train tokenize --workers N` against HF tokenizers' single-thread
# encode of the same documents with the same tokenizer.json, same run.
# Goal: ours with N workers >= 0.9 * N * HF's single thread.
# Ours is timed end to end (reading the JSONL, writing .bin/.idx); HF's is
# the encode loop alone, its file reading not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/cpt-train ]] || scripts/build.sh >/dev/null
python=${CPT_PYTHON:-${CPT_VENV:-$HOME/.cache/cpt-train/venv}/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" tests/data/hf_bpe.py corpus "$work/train.jsonl"
# The benchmark text: the corpus four times over, each copy shuffled, ~4.3M tokens.
"$python" - "$work" <<'PY'
import random, sys
work = sys.argv[1]
lines = open(f"{work}/train.jsonl", encoding="utf-8").readlines()
with open(f"{work}/bench.jsonl", "w", encoding="utf-8") as out:
    for seed in range(4):
        random.Random(seed).shuffle(lines)
        out.writelines(lines)
PY
printf "%-7s %12s %8s %10s %10s  %s\n" style tokens "HF s" "ours 1w s" "ours $(nproc)w s" "ours Nw / (N x HF 1 thread), goal >= 0.9"
for style in llama3 qwen2; do
  "$python" tests/data/hf_bpe.py make "$style" "$work/$style" "$work/train.jsonl"
  "$python" tests/data/hf_bpe.py encode "$work/$style/tokenizer.json" "$work/bench.jsonl" "$work/$style.ids.json"
  ours() {
    local start end
    start=$(date +%s.%N)
    build/cpt-train tokenize --tokenizer "$work/$style" --input "$work/bench.jsonl" --output-prefix "$work/$style-$1" \
      --no-eos --workers "$1" --log-level warn
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
  }
  one=$(ours 1)
  all=$(ours "$(nproc)")
  "$python" - "$work/$style.ids.json" "$one" "$all" "$(nproc)" "$style" <<'PY'
import json, sys
hf = json.load(open(sys.argv[1]))
one, many, n, style = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
# Throughput ratio: ours with n workers over n times HF's single thread.
ratio = (hf["seconds"] / many) / n
print(f"{style:<7} {hf['tokens']:>12,} {hf['seconds']:>8.2f} {one:>10.2f} {many:>10.2f}  {ratio:.2f} "
      f"({'met' if ratio >= 0.9 else 'NOT met'}; 1 worker: {hf['seconds'] / one:.2f}x HF)")
PY
done
