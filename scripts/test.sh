#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds, checks the torch-facing code
# against torch 2.11's headers, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# The torch-facing code against the oldest supported LibTorch's headers (2.11).
scripts/check-torch-headers.sh
ctest --test-dir build --output-on-failure --parallel "$(nproc)"
