#!/usr/bin/env bash
# CPU training numbers, each against a baseline measured in the same run
# (CPT_BENCH_ROUNDS rounds, 3 by default, taking turns; medians):
#   tokens/s of cpt-train vs Python PyTorch eager (the venv's torch, the wheel cpt-train links) on the same
#   model, batch, AdamW and clipping, fp32 and bf16                   goal >= 1.5x
#   MFU against this machine's matmul FLOP/s in the training dtype (cpt-train measures it at start) goal >= 0.7
# for the tiny config and a ~100M-parameter one.
#
# --compiled adds the same baseline under torch.compile (goal >= 1.0x; its
# compilation is not timed) and leaves out the checkpoint part: the form
# scripts/bench-peers.sh runs.
set -euo pipefail
compiled=""
[[ ${1:-} == --compiled ]] && compiled=1
cd "$(dirname "$0")/.."
[[ -x build/cpt-train ]] || scripts/build.sh >/dev/null
python=${CPT_VENV:-$HOME/.cache/cpt-train/venv}/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Random shards: the speed does not depend on the text.
"$python" scripts/random_shard.py "$work/random" 2000

# CPT_BENCH_BEFORE=/path/to/an/older/cpt-train adds its tokens/s beside
# ours, in the same run (a before/after of a change), and its step split.
before=${CPT_BENCH_BEFORE:-}
printf '| model | cpt-train tokens/s | PyTorch eager tokens/s | ratio (goal >= 1.5) | MFU vs the matmul peak in the training dtype (goal >= 0.7) |%s%s\n' \
  "${compiled:+ torch.compile tokens/s | ratio (goal >= 1.0) |}" "${before:+ before: tokens/s | before: ratio |}"
printf '| --- | --- | --- | --- | --- |%s%s\n' "${compiled:+ --- | --- |}" "${before:+ --- | --- |}"
splits=""
train() {  # binary out name-args... ; prints "tokens/s mfu split"
  local binary=$1 out=$2 d=$3 f=$4 l=$5 h=$6 kv=$7 v=$8 seq=$9 micro=${10} accum=${11} steps=${12} precision=${13}
  "$binary" --log-level warn --config configs/tiny.yaml --set run.output_dir="$out" \
    --set "model={preset: tiny, hidden_size: $d, intermediate_size: $f, num_hidden_layers: $l, num_attention_heads: $h, num_key_value_heads: $kv, vocab_size: $v}" \
    --set tokenizer= --set "data.sources=[{name: random, prefix: $work/random}]" --set data.eval=[] --set data.seq_len=$seq \
    --set train.global_batch_size=$((micro * accum)) --set train.micro_batch_size=$micro --set train.steps=$((steps + 1)) \
    --set schedule.warmup_steps=1 --set checkpoint.every_steps=0 --set logging.every_steps=1 --set eval.every_steps=0 \
    --set checkpoint.keep_last=1 --set train.precision=$precision >/dev/null
  # Skip the first step (warm-up); the median of the rest, as for the
  # baseline, so that one stall on a shared machine does not move it. The
  # split: median seconds per step of each phase, from the device timers.
  "$python" -c "
import json, statistics
rows = [json.loads(l) for l in open('$out/metrics.jsonl')][1:]
median = lambda key: statistics.median(r.get(key, 0.0) for r in rows)
split = ' / '.join(f'{1000 * median(\"time/\" + p + \"_s\"):.0f}' for p in ('data', 'forward', 'backward', 'communication', 'optimizer'))
print(median('tokens_per_s'), median('mfu'), split)"
  rm -rf "$out"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Rounds in turn (ours, eager, compiled, ours, ...) and the median of each
# side: a shared machine drifts by tens of percent over minutes, and a
# ratio of two runs minutes apart would measure the drift.
rounds=${CPT_BENCH_ROUNDS:-3}
bench() {  # name hidden inter layers heads kv vocab seq micro accum steps precision
  local name="$1 ${12}"
  shift
  local round ours_all=() mfu_all=() theirs_all=() compiled_all=() old_all=() ours mfu split old_split=""
  for ((round = 1; round <= rounds; round++)); do
    read -r ours mfu split < <(train build/cpt-train "$work/$name-$round" "$@")
    ours_all+=("$ours"); mfu_all+=("$mfu")
    theirs_all+=("$("$python" bench/train_reference.py "$@")")
    [[ -n $compiled ]] && compiled_all+=("$("$python" bench/train_reference.py "$@" compile 2>/dev/null)")
    if [[ -n $before ]]; then
      local old
      read -r old _ old_split < <(train "$before" "$work/$name-before-$round" "$@")
      old_all+=("$old")
    fi
  done
  ours=$(median "${ours_all[@]}"); mfu=$(median "${mfu_all[@]}")
  local theirs extra=""
  theirs=$(median "${theirs_all[@]}")
  splits+="| $name | ours | $split |"$'\n'
  if [[ -n $compiled ]]; then
    local theirs_compiled
    theirs_compiled=$(median "${compiled_all[@]}")
    extra=$(printf ' %.0f | %.2fx |' "$theirs_compiled" "$(echo "$ours / $theirs_compiled" | bc -l)")
  fi
  if [[ -n $before ]]; then
    local old
    old=$(median "${old_all[@]}")
    extra+=$(printf ' %.0f | %.2fx |' "$old" "$(echo "$old / $theirs" | bc -l)")
    splits+="| $name | before | $old_split |"$'\n'
  fi
  printf '| %s | %.0f | %.0f | %.2fx | %.2f |%s\n' "$name" "$ours" "$theirs" "$(echo "$ours / $theirs" | bc -l)" "$mfu" "$extra"
}
for precision in fp32 bf16; do
  bench "tiny (7.3M)" 256 768 4 8 4 8192 256 8 2 10 $precision
  bench "~100M" 768 2048 12 12 12 8192 256 4 1 4 $precision
done

echo
echo "## step split, ms per step: data / forward / backward / communication / optimizer"
printf '| model | binary | ms |\n| --- | --- | --- |\n%s' "$splits"

[[ -n $compiled ]] && exit 0
echo
echo "## checkpoint save vs raw sequential write, ~97M-parameter model"
[[ -x build/bench_checkpoint ]] || scripts/build.sh >/dev/null
build/bench_checkpoint "$work/checkpoint"
