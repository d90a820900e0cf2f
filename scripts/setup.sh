#!/usr/bin/env bash
# Sets up a Debian 12 machine to build, test and run cpt-train:
#  1. the Debian packages below (C++ libraries, tools, test text);
#  2. a Python venv outside the checkout, ${CPT_VENV:-$HOME/.cache/cpt-train/venv},
#     holding PyPI's CUDA 13.0 LibTorch (the torch wheel) and the real tools
#     the tests check against (transformers, safetensors, mergekit,
#     megatron-core), every package pinned in scripts/requirements.txt;
#  3. the headers of the oldest supported LibTorch (2.11.0, pinned in
#     scripts/requirements-oldest-torch.txt) in $CPT_VENV/oldest-torch, for
#     scripts/check-torch-headers.sh.
# Idempotent: a second run installs and downloads nothing. Run as root or
# with sudo available. The CUDA 13.0 toolkit (nvcc) must be installed: the
# CUDA wheel's CMake config enables the CUDA language even for host code.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build git pkg-config
  python3 python3-venv
  # c10d's Gloo headers include gloo's own, which the torch wheel does not ship.
  libgloo-dev
  libsentencepiece-dev sentencepiece
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libyaml-cpp-dev
  libgtest-dev
  # tokenizer.json (Llama-3, Qwen2): the pre-tokenizer's regex and NFC.
  libpcre2-dev libutf8proc-dev
  # scripts/fuzz.sh: clang with libFuzzer and the sanitizer runtimes.
  clang libclang-rt-14-dev
  zlib1g-dev libzstd-dev zstd gzip bc time
  # Real English and computing-domain text for the demo and data tests.
  dict-gcide dict-foldoc
  # The run report's test opens the page in a real headless browser.
  chromium fonts-liberation
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
  echo "setup: all ${#packages[@]} Debian packages already installed"
else
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [[ ! -x $nvcc ]]; then
  echo "setup: error: nvcc not found (PATH, /usr/local/cuda/bin): the CUDA 13.0 toolkit is needed to configure" \
       "against the CUDA LibTorch" >&2
  exit 1
fi

# The venv is made with Debian's python3 so that it does not depend on
# whichever interpreter is first on PATH. The stamp holds the hash of the
# requirements it was filled from; while it matches, pip is not run.
venv=${CPT_VENV:-$HOME/.cache/cpt-train/venv}
requirements=scripts/requirements.txt
want=$(sha256sum "$requirements" | cut -d' ' -f1)
stamp=$venv/.cpt-requirements.sha256
if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $venv/bin/python ]]; then
  echo "setup: venv $venv is up to date"
else
  if [[ ! -x $venv/bin/python ]]; then
    echo "setup: making the venv $venv"
    /usr/bin/python3 -m venv "$venv"
  fi
  echo "setup: installing $(grep -c '==' "$requirements") pinned Python packages into $venv (torch, transformers, mergekit, ...)"
  start=$(date +%s)
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
  echo "$want" >"$stamp"
  echo "setup: venv ready in $(($(date +%s) - start)) s: $("$venv/bin/python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)')"
fi

# Only the headers of the oldest torch are kept (62 MB of a 530 MB wheel).
oldest=$venv/oldest-torch
oldest_requirements=scripts/requirements-oldest-torch.txt
want=$(sha256sum "$oldest_requirements" | cut -d' ' -f1)
if [[ -f $oldest/.stamp && $(cat "$oldest/.stamp") == "$want" ]]; then
  echo "setup: $(cat "$oldest/version") headers in $oldest are up to date"
else
  rm -rf "$oldest"
  mkdir -p "$oldest/download"
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-input --no-deps --require-hashes \
    -r "$oldest_requirements" -d "$oldest/download"
  "$venv/bin/python" - "$oldest" <<'PY'
import glob, sys, zipfile
root = sys.argv[1]
with zipfile.ZipFile(glob.glob(root + "/download/torch-*.whl")[0]) as wheel:
    for name in wheel.namelist():
        if name.startswith("torch/include/") or name == "torch/version.py":
            wheel.extract(name, root)
version = {}
exec(open(root + "/torch/version.py").read(), version)
open(root + "/version", "w").write("torch " + version["__version__"] + "\n")
PY
  rm -rf "$oldest/download"
  echo "$want" >"$oldest/.stamp"
  echo "setup: unpacked the $(cat "$oldest/version") headers into $oldest"
fi
