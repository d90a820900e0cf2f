#!/usr/bin/env bash
# Builds the data configs/tiny.yaml trains on, from Debian's dictionaries:
# FOLDOC (computing) as the domain, GCIDE (general English) as replay.
#   runs/tiny-data/tokenizer.model              SentencePiece, 8k vocab (tiny preset)
#   runs/tiny-data/{foldoc,gcide}-{train,heldout}.{bin,idx}
# Idempotent: does nothing when the shards exist.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/tiny-data
bin=${CPT_TRAIN:-build/cpt-train}
if [[ -f $out/gcide-heldout.idx ]]; then
  echo "make-tiny-data: $out is ready"
  exit 0
fi
mkdir -p "$out"
/usr/bin/python3 scripts/dict_to_jsonl.py /usr/share/dictd/foldoc.dict.dz "$out/foldoc" --max-bytes 6000000
/usr/bin/python3 scripts/dict_to_jsonl.py /usr/share/dictd/gcide.dict.dz "$out/gcide" --max-bytes 3000000

# The tokenizer learns from both, as a base model's tokenizer would have.
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
with open(f"{out}/spm-corpus.txt", "w", encoding="utf-8") as corpus:
    for name in ("foldoc-train", "gcide-train"):
        for line in open(f"{out}/{name}.jsonl", encoding="utf-8"):
            corpus.write(json.loads(line)["text"].replace("\n", " ") + "\n")
PY
spm_train --input="$out/spm-corpus.txt" --model_prefix="$out/tokenizer" --vocab_size=8192 \
  --model_type=unigram --character_coverage=0.9995 --byte_fallback=true \
  --input_sentence_size=300000 --shuffle_input_sentence=true --num_threads="$(nproc)" \
  --minloglevel=2 >/dev/null 2>&1

for name in foldoc-train foldoc-heldout gcide-train gcide-heldout; do
  "$bin" tokenize --tokenizer "$out/tokenizer.model" --input "$out/$name.jsonl" --output-prefix "$out/$name"
done
