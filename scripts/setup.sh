#!/usr/bin/env bash
# Installs every Debian 12 package cpt-train needs to build, test and run the
# demo. Idempotent and quiet; run as root or with sudo available.
set -euo pipefail

packages=(
  build-essential cmake ninja-build git pkg-config
  libtorch-dev libgloo-dev
  # Without it Debian's LibTorch multiplies fp32 matrices with the reference
  # BLAS: 6 GFLOP/s instead of 160 on a 2-core machine.
  libopenblas0-pthread
  libsentencepiece-dev sentencepiece
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libyaml-cpp-dev
  libgtest-dev
  zlib1g-dev libzstd-dev zstd gzip bc time
  # Independent references for the tests (run as /usr/bin/python3).
  python3-torch python3-numpy python3-sentencepiece
  # Real English and computing-domain text for the demo and data tests.
  dict-gcide dict-foldoc
)

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
