#!/usr/bin/env bash
# The one build, on a GPU machine with no package registry: the same CMake
# configuration CI uses, but against the torch wheel that machine's Python
# already has (PYTHON, default python3; torch 2.11.0+cu130 on our H200s)
# instead of scripts/setup.sh's venv, and with the Debian libraries unpacked
# from DEPS (../shared/device/pack-debs.sh). Output: build-cuda/.
#
#   DEPS=device-debs scripts/build-cuda.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(command -v "${PYTHON:-python3}" || true)

missing=()
[[ -n $python ]] && "$python" -c 'import torch' 2>/dev/null || missing+=("python3 with torch")
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja)
command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]] || missing+=(nvcc)
if ((${#missing[@]})); then
  echo "error: this machine lacks what the build needs: ${missing[*]}" >&2
  exit 2
fi
echo "pip torch $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"

extra=("-DCPT_PYTHON=$python")
if [[ -n ${DEPS:-} ]]; then
  deps=$(cd "$DEPS" && pwd)
  extra+=("-DCMAKE_PREFIX_PATH=$deps/usr;$deps/usr/lib/x86_64-linux-gnu/cmake")
  extra+=("-DCMAKE_INCLUDE_PATH=$deps/usr/include" "-DCMAKE_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu")
  export PKG_CONFIG_PATH=$deps/usr/lib/x86_64-linux-gnu/pkgconfig
  export LD_LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  # Debian's headers (fmt, gloo, spdlog, ...) live under DEPS, not /usr/include.
  export CXXFLAGS="-isystem $deps/usr/include ${CXXFLAGS:-}"
fi
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra[@]}"
ninja -C build-cuda
build-cuda/cpt-train version --backends
