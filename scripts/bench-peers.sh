#!/usr/bin/env bash
# Every stage of cpt-train against what its users would run instead, on the
# same inputs and machine, in one run; writes the tables into
# docs/performance.md (or $CPT_BENCH_OUT) with the date, versions and commit.
#
#   merge       cpt-train merge vs mergekit-yaml (TIES, DARE-TIES, SLERP of ~1 GB bf16 models)
#   tokenize    cpt-train tokenize vs Megatron-LM's tools/preprocess_data.py and HF tokenizers
#   loader      cpt-train's blended packed loader vs megatron-core GPTDataset + BlendedDataset
#   training    cpt-train vs transformers' LlamaForCausalLM, eager and torch.compile (scripts/bench-train.sh)
#   checkpoint  cpt-train's save/load vs safetensors save_file/load_file and torch.save/load
#
# The peers come from the venv (scripts/requirements.txt). Megatron-LM's
# preprocessing script is not on PyPI: MEGATRON_LM names a copy of the
# NVIDIA/Megatron-LM repository at the tag of the venv's megatron-core
# (core_v0.16.1), kept outside this checkout, plus `six` on PYTHONPATH;
# without it that row says so and the run goes on.
#
# Usage: scripts/bench-peers.sh [SECTION...]   (default: all five)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/cpt-train && -x build/bench_loader && -x build/bench_checkpoint && -x build/make_models ]] || scripts/build.sh >/dev/null
python=${CPT_VENV:-$HOME/.cache/cpt-train/venv}/bin/python
out=${CPT_BENCH_OUT:-docs/performance.md}
megatron_lm=${MEGATRON_LM:-}
sections=("$@")
[[ ${#sections[@]} -gt 0 ]] || sections=(merge tokenize loader training checkpoint)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
now() { date +%s.%N; }
ratio() { echo "$1 / $2" | bc -l; }
verdict() { [[ $(echo "$1" | bc -l) == 1 ]] && echo met || echo "NOT met"; }  # a bc condition
# Drops the page cache when this machine lets us (root); else every reader
# of a row starts from the same warm cache.
cache_state=warm
cold() { sync; if echo 1 >/proc/sys/vm/drop_caches 2>/dev/null; then cache_state=cold; else cat "$@" >/dev/null; fi; }
commas() { printf '%d' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
json() { "$python" -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }

merge_section() {
  echo "## Merge: cpt-train merge vs mergekit-yaml"
  echo
  # hidden 2048, 8 layers, vocab 32000: 530M parameters, 1.06 GB in bf16 each.
  build/make_models "$work/models" 2048 5632 8 32000 3
  local m=$work/models threads merge_rounds=3
  threads=$(nproc)
  cat >"$work/ties.yaml" <<YAML
models:
  - model: $m/model0
  - model: $m/model1
    parameters: {density: 0.5, weight: 0.6}
  - model: $m/model2
    parameters: {density: 0.3, weight: 0.4}
merge_method: ties
base_model: $m/model0
dtype: bfloat16
YAML
  sed 's/merge_method: ties/merge_method: dare_ties/' "$work/ties.yaml" >"$work/dare_ties.yaml"
  cat >"$work/slerp.yaml" <<YAML
models:
  - model: $m/model0
  - model: $m/model1
merge_method: slerp
base_model: $m/model0
parameters: {t: 0.4}
dtype: bfloat16
YAML
  echo "Inputs: 3 (SLERP: 2) Llama-shaped bf16 models of $(du -m "$m/model0/model.safetensors" | cut -f1) MB each. mergekit with \`--lazy-unpickle -j $threads\`; each run starts from a $( (echo 1 >/proc/sys/vm/drop_caches) 2>/dev/null && echo cold || echo warm) page cache. The read of the inputs and cpt-train are medians of $merge_rounds rounds, each a read followed by a merge, and the ratio to the read is the median of the rounds' own ratios: this virtual disk reads the same files in 1.5 s in one minute and 6 s in another. mergekit runs once. Goals: at least 3x faster than mergekit at at most 1/2 of its peak RSS, and at most 2x one cold read of the inputs."
  echo
  echo "| merge | read inputs once | cpt-train | mergekit-yaml | speed-up (goal >= 3) | cpt-train / read (goal <= 2) | peak RSS cpt-train / mergekit (goal <= 0.5) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
  local method inputs read_s ours_s ours_kib peer_s peer_kib s e round per_read per_ours per_ratio per_kib over_read
  for method in ties dare_ties slerp; do
    inputs=("$m/model0/model.safetensors" "$m/model1/model.safetensors")
    [[ $method != slerp ]] && inputs+=("$m/model2/model.safetensors")
    per_read=(); per_ours=(); per_ratio=(); per_kib=()
    for ((round = 0; round < merge_rounds; round++)); do
      cold "${inputs[@]}"
      s=$(now); cat "${inputs[@]}" >/dev/null; e=$(now)
      per_read+=("$(echo "$e - $s" | bc -l)")
      cold "${inputs[@]}"
      rm -rf "$work/ours-$method"
      /usr/bin/time -f "%e %M" -o "$work/time" build/cpt-train --log-level warn merge --config "$work/$method.yaml" \
        --output "$work/ours-$method"
      read -r ours_s ours_kib <"$work/time"
      per_ours+=("$ours_s"); per_kib+=("$ours_kib")
      per_ratio+=("$(ratio "$ours_s" "${per_read[-1]}")")
    done
    read_s=$(median "${per_read[@]}"); ours_s=$(median "${per_ours[@]}"); ours_kib=$(median "${per_kib[@]}")
    over_read=$(median "${per_ratio[@]}")
    cold "${inputs[@]}"
    /usr/bin/time -f "%e %M" -o "$work/time" "$(dirname "$python")/mergekit-yaml" "$work/$method.yaml" "$work/peer-$method" \
      --lazy-unpickle -j "$threads" --no-copy-tokenizer --no-write-model-card --quiet >"$work/mergekit.log" 2>&1 ||
      { echo "mergekit-yaml failed on $method:" >&2; tail -5 "$work/mergekit.log" >&2; exit 1; }
    read -r peer_s peer_kib <"$work/time"
    rm -rf "$work/ours-$method" "$work/peer-$method"
    printf '| %s | %.1f s | %.1f s, %.0f MB | %.1f s, %.0f MB | %.1fx (%s) | %.2fx (%s) | %.2f (%s) |\n' "$method" "$read_s" \
      "$ours_s" "$(echo "$ours_kib / 1024" | bc -l)" "$peer_s" "$(echo "$peer_kib / 1024" | bc -l)" \
      "$(ratio "$peer_s" "$ours_s")" "$(verdict "$peer_s >= 3 * $ours_s")" \
      "$over_read" "$(verdict "$over_read <= 2")" \
      "$(ratio "$ours_kib" "$peer_kib")" "$(verdict "2 * $ours_kib <= $peer_kib")"
  done
  rm -rf "$work/models"
}

# Where two tokenizations of the same documents differ, and whether each
# differing document is a tie: both splits with the same total score, which
# a Viterbi may break either way (SentencePiece 0.1.97 and 0.2.3 do).
token_differences() {
  local c
  c=$("$python" bench/peers.py compare-tokens "$@")
  "$python" -c "
import json, sys
c = json.loads(sys.argv[1])
if c['tokens'] != c['peer_tokens']:
    print(f\"{c['tokens']:,} vs {c['peer_tokens']:,} tokens, {c['documents_differ']:,} of {c['documents']:,} documents differ\", end='')
elif c['tokens_differ'] == 0:
    print('the same tokens, other .idx', end='')
else:
    print(f\"{c['tokens_differ']:,} of {c['tokens']:,} tokens differ, in {c['documents_differ']:,} of {c['documents']:,} documents\", end='')
if c['documents_differ']:
    untied = c['documents_differ'] - c['documents_tied']
    print('; all ties (the same total score)' if untied == 0 else f'; {untied:,} of them not ties')" "$c"
}

tokenize_section() {
  echo "## Tokenize: cpt-train tokenize vs Megatron-LM preprocess_data.py and HF tokenizers"
  echo
  local n
  n=$(nproc)
  # ~37 MB of English dictionary text, one document per JSONL line.
  /usr/bin/python3 scripts/dict_to_jsonl.py /usr/share/dictd/gcide.dict.dz "$work/text" --max-bytes 40000000 \
    --heldout-every 1000000000
  local jsonl=$work/text-train.jsonl
  "$python" -c "
import json, sys
with open(sys.argv[2], 'w', encoding='utf-8') as out:
    for line in open(sys.argv[1], encoding='utf-8'):
        out.write(json.loads(line)['text'].replace('\n', ' ') + '\n')" "$jsonl" "$work/corpus.txt"
  # Two SentencePiece models as users have them: a 32,000-piece BPE one
  # with byte fallback (Llama 2's kind) and the tiny config's 8,192-piece unigram one.
  spm_train --input="$work/corpus.txt" --model_prefix="$work/bpe" --vocab_size=32000 --model_type=bpe \
    --character_coverage=0.9995 --byte_fallback=true --input_sentence_size=100000 --shuffle_input_sentence=true \
    --num_threads="$n" --minloglevel=2 >/dev/null 2>&1
  scripts/make-tiny-data.sh >/dev/null
  echo "Input: $(du -m "$jsonl" | cut -f1) MB of JSONL, $(commas "$(wc -l <"$jsonl")") documents. $n workers each: \`cpt-train tokenize --workers $n --no-bos\` and \`preprocess_data.py --workers $n --append-eod\` (both write .bin/.idx: EOS after each document, no BOS, as Megatron's Llama2Tokenizer does), timed end to end from process start. HF: \`Tokenizer.encode_batch_fast\` with RAYON_NUM_THREADS=$n of the model as transformers converts it, timing the encode call alone (not reading, not writing). Where tokens differ, each document that differs is checked for a tie: both splits with the same total piece score (within float32 rounding), which the Viterbi may break either way. Goal: at least 1.5x each, identical tokens."
  echo
  echo "| model | tokens | cpt-train | Megatron-LM | speed-up (goal >= 1.5) | identical .bin/.idx | HF tokenizers encode | speed-up (goal >= 1.5) | identical tokens |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  local model name s e ours_s peer_s hf hf_s tokens same hf_same meg
  for name in bpe-32k unigram-8k; do
    [[ $name == bpe-32k ]] && model=$work/bpe.model || model=$PWD/runs/tiny-data/tokenizer.model
    s=$(now)
    build/cpt-train --log-level warn tokenize --tokenizer "$model" --input "$jsonl" --output-prefix "$work/ours" \
      --workers "$n" --no-bos
    e=$(now)
    ours_s=$(echo "$e - $s" | bc -l)
    tokens=$(build/cpt-train data inspect --json --prefix "$work/ours" | "$python" -c "import json,sys; print(json.load(sys.stdin)['tokens'])")
    if [[ -n $megatron_lm ]]; then
      s=$(now)
      (cd "$megatron_lm" && PYTHONPATH="$megatron_lm${PYTHONPATH:+:$PYTHONPATH}" "$python" tools/preprocess_data.py \
        --input "$jsonl" --output-prefix "$work/megatron" --tokenizer-type Llama2Tokenizer --tokenizer-model "$model" \
        --append-eod --workers "$n" --log-interval 100000000 >"$work/megatron.log" 2>&1) ||
        { echo "preprocess_data.py failed:" >&2; tail -5 "$work/megatron.log" >&2; exit 1; }
      # Its pool's workers can die (a tokenizer that does not load) while it exits 0.
      [[ -s $work/megatron_text_document.idx ]] ||
        { echo "preprocess_data.py wrote no $work/megatron_text_document.idx:" >&2; tail -5 "$work/megatron.log" >&2; exit 1; }
      e=$(now)
      peer_s=$(echo "$e - $s" | bc -l)
      same=no
      cmp -s "$work/ours.bin" "$work/megatron_text_document.bin" && cmp -s "$work/ours.idx" "$work/megatron_text_document.idx" && same=yes
      [[ $same == yes ]] || same="no: $(token_differences "$model" "$work/ours.bin" "$work/megatron_text_document.bin")"
      meg=$(printf '%.1f s | %.2fx (%s) | %s' "$peer_s" "$(ratio "$peer_s" "$ours_s")" "$(verdict "$peer_s >= 1.5 * $ours_s")" "$same")
      rm -f "$work"/megatron_text_document.*
    else
      meg="not run: set MEGATRON_LM | | "
    fi
    hf=$(RAYON_NUM_THREADS=$n "$python" bench/peers.py tokenize-hf "$model" "$jsonl" "$work/hf.bin")
    hf_s=$(json "$hf" "['encode_s']")
    hf_same=yes
    cmp -s "$work/ours.bin" "$work/hf.bin" || hf_same="no: $(token_differences "$model" "$work/ours.bin" "$work/hf.bin")"
    printf '| %s | %s | %.1f s | %s | %.1f s | %.2fx (%s) | %s |\n' "$name" "$(commas "$tokens")" "$ours_s" "$meg" \
      "$hf_s" "$(ratio "$hf_s" "$ours_s")" "$(verdict "$hf_s >= 1.5 * $ours_s")" "$hf_same"
    rm -f "$work"/ours.* "$work/hf.bin"
  done
}

loader_section() {
  echo "## Data loader: cpt-train vs megatron-core GPTDataset + BlendedDataset"
  echo
  local seq=4096 micro=8 run=2441407 mix=100000 timed=16384 ours peer warm
  build/bench_loader write "$work/shards" 64
  local blend=("$work/shards/domain:0.9" "$work/shards/general:0.1")
  ours=$(build/bench_loader run "$seq" "$micro" "$mix" "$timed" "${blend[@]}")
  peer=$("$python" bench/peers.py loader "$seq" "$micro" "$run" "$mix" "$timed" 2 "$work/megatron-cache" "${blend[@]}" 2>/dev/null)
  rm -f "$work/megatron-cache/process-group"
  warm=$("$python" bench/peers.py loader "$seq" "$micro" "$run" "$mix" "$timed" 2 "$work/megatron-cache" "${blend[@]}" 2>/dev/null)
  echo "Shards: 64M random uint16 tokens in documents of 50-4,000 tokens, blended 0.9 / 0.1, sequences of $seq tokens, micro-batches of $micro. Megatron builds its indices for a run of $(commas $run) samples (10B tokens) and serves them through a torch DataLoader with 2 workers; cpt-train builds no index files. Start-up is from the shard names to the first micro-batch in hand (not counting either process's start or imports); throughput is the next $(commas $timed) samples as packed micro-batches; the mix is the source of each of the first $(commas $mix) samples against weight x n. Goals: start-up at least 10x faster, throughput at least the same, the mix at least as exact."
  echo
  echo "| measure | cpt-train | megatron-core | ratio | goal |"
  echo "| --- | --- | --- | --- | --- |"
  local o p w
  o=$(json "$ours" "['startup_s']"); p=$(json "$peer" "['startup_s']"); w=$(json "$warm" "['startup_s']")
  printf '| start-up, index files not yet built | %.4f s | %.3f s | %.0fx faster | >= 10x: %s |\n' "$o" "$p" "$(ratio "$p" "$o")" "$(verdict "$p >= 10 * $o")"
  printf '| start-up, index files already cached | %.4f s | %.3f s | %.0fx faster | |\n' "$o" "$w" "$(ratio "$w" "$o")"
  o=$(json "$ours" "['tokens_per_s']"); p=$(json "$peer" "['tokens_per_s']")
  printf '| throughput, packed tokens/s | %.3g | %.3g | %.1fx | >= 1x: %s |\n' "$o" "$p" "$(ratio "$o" "$p")" "$(verdict "$o >= $p")"
  o=$(json "$ours" "['worst_prefix_deviation']"); p=$(json "$peer" "['worst_prefix_deviation']")
  printf '| mix: worst \\|count - weight x n\\| over every prefix | %.2f samples (%s) | %.2f samples (%s) | | as exact: %s |\n' \
    "$o" "$(json "$ours" "['counts']")" "$p" "$(json "$peer" "['counts']")" "$(verdict "$o <= $p")"
}

training_section() {
  echo "## CPU training: cpt-train vs transformers' LlamaForCausalLM (eager and torch.compile)"
  echo
  echo "scripts/bench-train.sh --compiled: the same shapes, batch, AdamW, clipping and precision (bf16: autocast for the peer), random tokens; median tokens/s after warm-up steps (torch.compile's compilation not timed). Goals: at least 1.5x eager and 1.0x compiled."
  echo
  scripts/bench-train.sh --compiled
}

checkpoint_section() {
  echo "## Checkpoints: cpt-train vs safetensors and torch.save"
  echo
  # Twice: on the disk (what a run meets; this machine's virtual disk swings
  # between ~0.1 and ~1.3 GB/s from one write to the next) and on tmpfs
  # (the software's own cost, no device). On the disk each timed write
  # starts after a sync and a pause; the rounds take turns at which side
  # goes first; the peers save the tensors of the first checkpoint.
  local place dir pause round ours peer rows=()
  for place in disk tmpfs; do
    if [[ $place == disk ]]; then dir=$work/checkpoints; pause=5; else dir=/dev/shm/cpt-bench-peers.$$; pause=0; fi
    [[ $place == tmpfs && ! -w /dev/shm ]] && continue
    mkdir -p "$dir"
    local saves=() raws=() raw_directs=() loads=() sf_saves=() sf_loads=() pt_saves=() pt_loads=() mmap_loads=() bytes
    ours=$(build/bench_checkpoint "$dir/ours" --json 2>/dev/null)
    cp -r "$(json "$ours" "['checkpoint']")" "$dir/tensors"
    for round in 1 2 3; do
      if ((round % 2)); then
        rm -rf "$dir/ours"
        ours=$(build/bench_checkpoint "$dir/ours" --json "$pause" 2>/dev/null)
        peer=$("$python" bench/peers.py checkpoint "$dir/tensors" "$dir/peer" "$pause")
      else
        peer=$("$python" bench/peers.py checkpoint "$dir/tensors" "$dir/peer" "$pause")
        rm -rf "$dir/ours"
        ours=$(build/bench_checkpoint "$dir/ours" --json "$pause" 2>/dev/null)
      fi
      saves+=("$(json "$ours" "['save_s']")"); raws+=("$(json "$ours" "['raw_write_s']")"); loads+=("$(json "$ours" "['load_s']")")
      raw_directs+=("$(json "$ours" "['raw_direct_write_s']")")
      sf_saves+=("$(json "$peer" "['safetensors_save_s']")"); sf_loads+=("$(json "$peer" "['safetensors_load_s']")")
      pt_saves+=("$(json "$peer" "['torch_save_s']")"); pt_loads+=("$(json "$peer" "['torch_load_s']")")
      mmap_loads+=("$(json "$peer" "['torch_load_mmap_s']")")
      bytes=$(json "$peer" "['bytes']")
    done
    rm -rf "$dir"
    local save raw raw_direct load p
    save=$(median "${saves[@]}"); raw=$(median "${raws[@]}"); load=$(median "${loads[@]}")
    raw_direct=$(median "${raw_directs[@]}")
    p=$(median "${sf_saves[@]}")
    rows+=("$(printf '| %s | save vs safetensors save_file | %.2f s | %.2f s | %.2fx (%s) |' "$place" "$save" "$p" "$(ratio "$p" "$save")" "$(verdict "$p >= $save")")")
    p=$(median "${pt_saves[@]}")
    rows+=("$(printf '| %s | save vs torch.save | %.2f s | %.2f s | %.2fx (%s) |' "$place" "$save" "$p" "$(ratio "$p" "$save")" "$(verdict "$p >= $save")")")
    rows+=("$(printf '| %s | save vs raw write + fsync of the same bytes | %.2f s | %.2f s | %.2f (goal >= 0.7: %s) |' "$place" "$save" "$raw" "$(ratio "$raw" "$save")" "$(verdict "$raw >= 0.7 * $save")")")
    if [[ $raw_direct != -* ]]; then
      rows+=("$(printf '| %s | save vs raw O_DIRECT write + fsync of the same bytes | %.2f s | %.2f s | %.2f (goal >= 0.7: %s) |' "$place" "$save" "$raw_direct" "$(ratio "$raw_direct" "$save")" "$(verdict "$raw_direct >= 0.7 * $save")")")
    fi
    p=$(median "${sf_loads[@]}")
    rows+=("$(printf '| %s | load vs safetensors load_file | %.2f s | %.2f s | %.2fx (%s) |' "$place" "$load" "$p" "$(ratio "$p" "$load")" "$(verdict "$p >= $load")")")
    p=$(median "${pt_loads[@]}")
    rows+=("$(printf '| %s | load vs torch.load | %.2f s | %.2f s | %.2fx (%s) |' "$place" "$load" "$p" "$(ratio "$p" "$load")" "$(verdict "$p >= $load")")")
    p=$(median "${mmap_loads[@]}")
    rows+=("$(printf '| %s | load vs torch.load(mmap=True) | %.2f s | %.2f s | %.2fx (%s) |' "$place" "$load" "$p" "$(ratio "$p" "$load")" "$(verdict "$p >= $load")")")
  done
  echo "The ~97M-parameter model's weights and AdamW moments ($(commas "$((bytes / 1000000))") MB of tensors): cpt-train's save writes them (with O_DIRECT on the disk, through the page cache on tmpfs, fsynced, CRC-32C checksummed as they are written) and its load reads, validates and copies them into the model and optimizer (streaming stores past 1 MiB); each peer saves the same tensors, is fsynced, and loads them into fresh tensors of the same shapes; both loads are timed until they hold nothing but their targets (the peers release the last tensor they loaded, which holds the mapping or buffer it was read into, as cpt-train unmaps its files). Before the loads, cpt-train's files are read back once (for their checksums) into the page cache, where the peers' buffered writes leave theirs. Medians of 3 rounds on the disk (each timed write after a sync and a 5 s pause) and on tmpfs. Every timed write, ours, the peers' and the raw ones, starts right after its process touched and freed 2.5x the checkpoint's bytes: this VM returns freed memory to its host, and a page the guest has not used lately costs a host fault on first touch (1.17 GB into new tmpfs pages: 3.1 s; into pages just freed: 0.35 s), which used to fall on whichever writer came after the others. The raw writes are of the checkpoint's own bytes from memory in 8 MiB writes, through the page cache and with O_DIRECT; the loads are timed before them. Goals: at least 1.0x each, and save at least 0.7 of the raw write."
  echo
  echo "| where | measure | cpt-train | peer | ratio (goal >= 1.0) |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${rows[@]}"
}

for section in "${sections[@]}"; do
  case $section in
    merge | tokenize | loader | training | checkpoint) ;;
    *) echo "bench-peers.sh: unknown section '$section' (merge, tokenize, loader, training, checkpoint)" >&2; exit 2 ;;
  esac
done
for section in "${sections[@]}"; do
  echo "bench-peers.sh: $section ($(date +%T))" >&2
  "${section}_section" >"$work/$section.md"
  echo >>"$work/$section.md"
  cat "$work/$section.md"
done

versions=$("$python" bench/peers.py versions)
{
  echo "Written by \`scripts/bench-peers.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (sections: ${sections[*]}; $(( ($(date +%s) - started) / 60 )) min): every stage against what its users would run instead, on the same inputs and machine, in the same run. Ratios compare rows of one run only; a shared machine drifts between runs."
  echo
  echo "- cpt-train: commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include bench scripts || echo ' (with uncommitted changes)'), Release build"
  echo "- machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "- peers (venv): $("$python" -c "import json,sys; print(', '.join(f'{k} {v}' for k, v in json.loads(sys.argv[1]).items()))" "$versions")"
  if [[ -n $megatron_lm ]]; then
    echo "- Megatron-LM: $(git -C "$megatron_lm" describe --tags --always 2>/dev/null || cat "$megatron_lm/COMMIT" 2>/dev/null || echo "copy at $megatron_lm")"
  fi
  echo "- Debian: SentencePiece $(dpkg-query -W -f='${Version}' libsentencepiece0 2>/dev/null); page cache: $cache_state for the merge rows"
} >"$work/header.md"
# Each section's tables replace what lies between its markers in the file;
# the text around them (the reading of the figures) stays.
# A run of some sections leaves the header (the full run's) alone and
# stamps those sections instead.
blocks=(header "${sections[@]}")
if [[ ${#sections[@]} -lt 5 ]]; then
  blocks=("${sections[@]}")
  for section in "${sections[@]}"; do
    echo "This section was re-run alone on $(date -u '+%Y-%m-%d %H:%M UTC') at commit $(git rev-parse --short HEAD); the header's versions and machine apply." >>"$work/$section.md"
  done
fi
"$python" - "$out" "$work" "${blocks[@]}" <<'PY'
import os, sys
out, work, names = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(out, encoding="utf-8").read()
for name in names:
    begin, end = f"<!-- bench-peers.sh: {name} -->", f"<!-- bench-peers.sh: {name} end -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        sys.exit(f"bench-peers.sh: {out} needs the lines {begin} and {end} once each; the tables are printed above")
    head, rest = text.split(begin, 1)
    generated = open(os.path.join(work, f"{name}.md"), encoding="utf-8").read().rstrip()
    text = f"{head}{begin}\n{generated}\n{end}{rest.split(end, 1)[1]}"
with open(out + ".tmp", "w", encoding="utf-8") as f:
    f.write(text)
os.replace(out + ".tmp", out)
PY
echo "bench-peers.sh: wrote $out" >&2
