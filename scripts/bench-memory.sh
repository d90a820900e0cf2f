#!/usr/bin/env bash
# The dry-run plan's per-rank memory against the peak a real run measures,
# same config, same run: for fp32 and bf16, and each
# train.activation_checkpointing mode, on a small model (~30M parameters,
# seq 1024, micro-batch 4) on the CPU. The measured figure is the CPU
# backend's "peak allocated": bytes in tensors (as CUDA's allocator counts
# them), over the first training steps. Goal: plan within 15% of measured.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/cpt-train ]] || scripts/build.sh >/dev/null
python=${CPT_VENV:-$HOME/.cache/cpt-train/venv}/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$python" scripts/random_shard.py "$work/random" 500

args=(--log-level warn --config configs/tiny.yaml --set tokenizer=
  --set "model={preset: tiny, hidden_size: 512, intermediate_size: 1408, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 8192}"
  --set "data.sources=[{name: random, prefix: $work/random}]" --set data.eval=[] --set data.seq_len=1024
  --set train.global_batch_size=8 --set train.micro_batch_size=4 --set train.steps=3 --set schedule.warmup_steps=1
  --set checkpoint.every_steps=0 --set logging.every_steps=1 --set eval.every_steps=0 --set checkpoint.keep_last=1
  --set backend=cpu)

printf '| precision | activation_checkpointing | plan: activations | plan: total | measured peak | plan / measured (goal 0.85-1.15) |\n'
printf '| --- | --- | --- | --- | --- | --- |\n'
for precision in fp32 bf16; do
  for recompute in none selective full; do
    run=("${args[@]}" --set run.output_dir="$work/$precision-$recompute" --set train.precision=$precision
      --set train.activation_checkpointing=$recompute)
    build/cpt-train "${run[@]}" --dry-run --json > "$work/plan.json"
    build/cpt-train "${run[@]}" > /dev/null
    "$python" - "$work/plan.json" "$work/$precision-$recompute/metrics.jsonl" "$precision" "$recompute" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))["plan"]["memory_per_rank"]
peak = max(json.loads(l)["peak_memory_bytes"] for l in open(sys.argv[2]))
mib = lambda b: f"{b / 2**20:.0f} MiB"
print(f"| {sys.argv[3]} | {sys.argv[4]} | {mib(plan['activations_bytes'])} | {mib(plan['total_bytes'])} | {mib(peak)} | "
      f"{plan['total_bytes'] / peak:.3f} |")
PY
  done
done
