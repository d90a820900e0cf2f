#!/usr/bin/env bash
# Data pipeline numbers, each against a baseline measured in the same run:
#   loader throughput vs memcpy of the same bytes (goal >= 0.25x)
#   tokenize with N workers vs N x single-thread spm_encode (goal >= 0.9x)
#   realised mix over 100,000 samples (goal: within +-1 sample)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/bench_data ]] || scripts/build.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "## loader and mix"
build/bench_data "$work/shards" 64 2>/dev/null

echo
echo "## tokenize ($(nproc) cores)"
scripts/make-tiny-data.sh >/dev/null
model=runs/tiny-data/tokenizer.model
# ~40 MB of English and computing text, one document per line.
/usr/bin/python3 scripts/dict_to_jsonl.py /usr/share/dictd/gcide.dict.dz "$work/bench" --max-bytes 40000000 --heldout-every 1000000000
/usr/bin/python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
with open(f"{work}/bench.txt", "w", encoding="utf-8") as plain, \
        open(f"{work}/flat.jsonl", "w", encoding="utf-8") as flat:
    for line in open(f"{work}/bench-train.jsonl", encoding="utf-8"):
        text = json.loads(line)["text"].replace("\n", " ")
        plain.write(text + "\n")
        flat.write(json.dumps({"text": text}) + "\n")
PY
now() { date +%s.%N; }
t0=$(now); spm_encode --model="$model" --output_format=id "$work/bench.txt" >"$work/spm.ids"; t1=$(now)
spm_s=$(echo "$t1 - $t0" | bc -l)
spm_tokens=$(wc -w <"$work/spm.ids")
docs=$(wc -l <"$work/bench.txt")
# Seconds from the tokenize log line ("... in 2.1s"): the job itself, without
# the ~0.7 s the process spends loading LibTorch before it starts.
run() {  # workers
  build/cpt-train tokenize --tokenizer "$model" --input "$work/flat.jsonl" --output-prefix "$work/out$1" \
    --workers "$1" 2>&1 | sed -n 's/.* tokens in \([0-9.]*\)s .*/\1/p'
}
one_s=$(run 1)
n=$(nproc)
n_s=$(run "$n")
ours_tokens=$(build/cpt-train data inspect --json --prefix "$work/out$n" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['tokens'])")
printf '| measure | value |\n| --- | --- |\n'
printf '| spm_encode, 1 thread | %.2f s |\n' "$spm_s"
printf '| cpt-train tokenize, 1 worker | %.2f s (%.2fx spm_encode) |\n' "$one_s" "$(echo "$spm_s / $one_s" | bc -l)"
printf '| cpt-train tokenize, %d workers | %.2f s (%.2fx spm_encode; goal >= %.1fx) |\n' "$n" "$n_s" \
  "$(echo "$spm_s / $n_s" | bc -l)" "$(echo "0.9 * $n" | bc -l)"
printf '| tokens: spm_encode + BOS/EOS vs ours | %d vs %d |\n' "$((spm_tokens + 2 * docs))" "$ours_tokens"
