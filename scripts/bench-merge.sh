#!/usr/bin/env bash
# Merge numbers against baselines measured in the same run, on a 3-model
# TIES merge of ~1 GB bf16 checkpoints:
#   wall time vs reading every input once (cat > /dev/null)   goal <= 2x
#   peak RSS vs 3 x the largest tensor + 256 MiB               goal <= 1x
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/make_models ]] || scripts/build.sh >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# hidden 2048, 8 layers, vocab 32000: 530M parameters, 1.06 GB in bf16.
build/make_models "$work" 2048 5632 8 32000 3
largest=$((32000 * 2048 * 2))
cat > "$work/ties.yaml" <<YAML
models:
  - model: $work/model0
  - model: $work/model1
    parameters: {density: 0.5, weight: 0.6}
  - model: $work/model2
    parameters: {density: 0.3, weight: 0.4}
merge_method: ties
base_model: $work/model0
dtype: bfloat16
YAML
inputs=("$work"/model*/model.safetensors)
input_bytes=$(cat "${inputs[@]}" | wc -c)
now() { date +%s.%N; }
# Both measurements start from a cold page cache when this machine lets us
# drop it (root), else both from a warm one.
cold() { sync; echo 1 >/proc/sys/vm/drop_caches 2>/dev/null && cache=cold || { cache=warm; cat "${inputs[@]}" >/dev/null; }; }
cold
s=$(now); cat "${inputs[@]}" >/dev/null; e=$(now)
read_s=$(echo "$e - $s" | bc -l)
cold
/usr/bin/time -f "%e %M" -o "$work/time" build/cpt-train --log-level warn merge --config "$work/ties.yaml" --output "$work/merged"
read -r merge_s rss_kib <"$work/time"
bound=$((3 * largest + 256 * 1024 * 1024))
printf '| measure | value |\n| --- | --- |\n'
printf '| inputs | 3 models, %.2f GB, largest tensor %.0f MB |\n' "$(echo "$input_bytes / 1000000000" | bc -l)" "$(echo "$largest / 1000000" | bc -l)"
printf '| read inputs once (cat > /dev/null, %s cache) | %.2f s |\n' "$cache" "$read_s"
printf '| cpt-train merge (ties, %d threads) | %.2f s = %.2fx the read (goal <= 2x) |\n' "$(nproc)" "$merge_s" "$(echo "$merge_s / $read_s" | bc -l)"
printf '| peak RSS | %.0f MB = %.2fx of 3 x largest + 256 MiB = %.0f MB (goal <= 1x) |\n' \
  "$(echo "$rss_kib * 1024 / 1000000" | bc -l)" "$(echo "$rss_kib * 1024 / $bound" | bc -l)" "$(echo "$bound / 1000000" | bc -l)"
