#!/usr/bin/env bash
# Data-parallel communication on this machine (Gloo over the loopback):
# the trainer's bucketed gradient all-reduce vs a bare c10d all-reduce of the
# same bytes, same run (goal >= 0.9x), for 2 and 4 ranks and two bucket sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/bench_allreduce ]] || scripts/build.sh >/dev/null
port=$((30000 + RANDOM % 20000))
header=1
for world in 2 4; do
  for bucket in 25 100; do
    pids=()
    for ((r = 0; r < world; r++)); do
      RANK=$r WORLD_SIZE=$world LOCAL_RANK=$r MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        build/bench_allreduce "$bucket" > "/tmp/bench_allreduce.$r" 2>/dev/null &
      pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    if ((header)); then cat /tmp/bench_allreduce.0; header=0; else tail -n 1 /tmp/bench_allreduce.0; fi
    port=$((port + 2))
  done
done
rm -f /tmp/bench_allreduce.*
