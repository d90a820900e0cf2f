#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, checks the torch-facing code
# against torch 2.11's headers, runs every test, and fuzzes each parser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# The torch-facing code against the oldest supported LibTorch's headers (2.11).
scripts/check-torch-headers.sh
ctest --test-dir build --output-on-failure --parallel "$(nproc)"
# Every parser of outside bytes under libFuzzer, ASan and UBSan, 30 s each
# (scripts/fuzz.sh 600 is the full run).
scripts/fuzz.sh 30
