#!/usr/bin/env bash
# The accelerator numbers, on a machine with an NVIDIA GPU and a pip torch
# (its LibTorch), with no package registry: the other build dependencies
# come unpacked from Debian packages carried in device-debs/ (made here by
# ../shared/device/pack-debs.sh device-debs; the folder is git-ignored).
# Builds build-cuda/ (the one build, against this machine's torch), runs the
# test suite with CPT_EXPECT_CUDA=1, then prints one table in well under 8 minutes:
# agreement with the CPU (bf16 tolerance), and for the Llama-2-7B shape at
# seq 4096 whether one full AdamW step fits, and tokens/s, MFU against
# 989 TFLOP/s dense bf16 (H100/H200) and peak memory of timed steps on fewer
# layers, with and without activation checkpointing.
set -euo pipefail
cd "$(dirname "$0")/../.."
deps=${DEPS:-$PWD/device-debs}
[[ -d $deps/usr ]] || { echo "error: $deps/usr missing; run ../shared/device/pack-debs.sh device-debs first" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
start=$SECONDS
DEPS=$deps scripts/build-cuda.sh > build-cuda.log 2>&1 || { tail -30 build-cuda.log; exit 1; }
echo "built in $((SECONDS - start)) s"
export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
CPT_EXPECT_CUDA=1 timeout 240 ctest --test-dir build-cuda -R 'Devices/' --output-on-failure || echo "device tests FAILED"
timeout 360 build-cuda/bench_device --backend cuda --preset llama2-7b --seq 4096 --timed-layers 4 --steps 5 \
  --peak-tflops "${PEAK_TFLOPS:-989}"
