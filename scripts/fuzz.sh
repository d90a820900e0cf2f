#!/usr/bin/env bash
# Fuzzes every parser of outside bytes (tests/fuzz/targets.cpp) with
# libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer (clang from
# Debian): first replays tests/fuzz/regressions/<target>/, then fuzzes each
# target for SECONDS (default 600), $CPT_FUZZ_JOBS at a time (default: the
# cores). The corpus grows in build-fuzz/corpus/ across runs; a crash, hang
# (>10 s), leak, sanitizer report or stray exception leaves its input in
# build-fuzz/artifacts/<target>/ and makes the script exit 1.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
jobs=${CPT_FUZZ_JOBS:-$(nproc)}
build=build-fuzz
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fsanitize=fuzzer-no-link -fno-omit-frame-pointer -g"
cmake -S . -B "$build" -G Ninja -DCPT_FUZZ=ON -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS="$sanitize" >/dev/null
cmake --build "$build" --parallel "$(nproc)" | grep -v '^\[' || true
cmake --build "$build" --parallel "$(nproc)" >/dev/null  # fails loudly if the build failed

targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(safetensors safetensors_index hf_config megatron_idx run_config merge_config text_input trainer_state
           tokenizer_json)
fi

# Seeds: the project's own writers and the files its tests use.
seeds=$build/seeds
rm -rf "$seeds"
"$build/tests/fuzz/fuzz_seeds" . "$seeds"
for kind in jsonl txt; do
  index=$([[ $kind == jsonl ]] && echo 0 || echo 1)
  body=$(mktemp)
  tail -c +2 "$seeds/text_input/$kind" >"$body"
  { printf "\\x$(printf %02x $((index + 2)))"; gzip -c "$body"; } >"$seeds/text_input/$kind.gz"
  { printf "\\x$(printf %02x $((index + 4)))"; zstd -q -c "$body"; } >"$seeds/text_input/$kind.zst"
  rm -f "$body"
done

# The targets' scratch files, in memory where there is /dev/shm; removed
# here, since a target killed for a timeout or its memory cannot.
CPT_FUZZ_SCRATCH=$(mktemp -d -p /dev/shm cpt-fuzz.XXXXXX 2>/dev/null || mktemp -d)
export CPT_FUZZ_SCRATCH
trap 'rm -rf "$CPT_FUZZ_SCRATCH"' EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
logs=$build/logs
mkdir -p "$logs"

fuzz_one() {
  local target=$1 seconds=$2 build=$3
  local corpus=$build/corpus/$target artifacts=$build/artifacts/$target/
  local regressions=tests/fuzz/regressions/$target
  mkdir -p "$corpus" "$artifacts"
  if [[ -d $regressions ]] && ! "$build/tests/fuzz/fuzz_$target" -runs=0 "$regressions" >"$build/logs/$target.replay" 2>&1; then
    echo "$target: a kept regression input fails again (see $build/logs/$target.replay)"
    return 1
  fi
  if "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" "$build/seeds/$target" \
      >"$build/logs/$target.log" 2>&1; then
    local runs cov
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$build/logs/$target.log" | awk '{print $2}')
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$build/logs/$target.log" | tail -1)
    echo "$target: ok, $runs executions in ${seconds} s, $cov, corpus $(ls "$corpus" | wc -l) inputs"
  else
    echo "$target: FAILED: $(grep -m1 -E 'ERROR|runtime error|uncaught|deadly signal|Timeout' "$build/logs/$target.log" || echo 'see log'); log $build/logs/$target.log, input in $artifacts"
    return 1
  fi
}
export -f fuzz_one

echo "fuzz: ${#targets[@]} targets, ${seconds} s each, $jobs at a time, ASan + UBSan"
if printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'fuzz_one "$@"' _ {} "$seconds" "$build"; then
  echo "fuzz: no crashes, hangs, leaks or sanitizer reports"
else
  echo "fuzz: failures above; keep each fixed input under tests/fuzz/regressions/<target>/" >&2
  exit 1
fi
