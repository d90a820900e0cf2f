#!/usr/bin/env bash
# Builds cpt-train against a CUDA LibTorch: the one inside a pip torch wheel
# (default: the first python3 with torch), or an unpacked LibTorch zip
# (LIBTORCH=/path/to/libtorch). Output: build-cuda/.
#
#   scripts/build-cuda.sh                # pip torch
#   LIBTORCH=/opt/libtorch scripts/build-cuda.sh
#   DEPS=/path/to/unpacked/debs scripts/build-cuda.sh   # non-torch libraries not installed system-wide
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

if [[ -n ${LIBTORCH:-} ]]; then
  prefix=$LIBTORCH
  # A LibTorch zip says its ABI in its file name (cxx11-abi-...) and in its build flags.
  abi=1
  grep -q -- "-D_GLIBCXX_USE_CXX11_ABI=0" "$LIBTORCH/share/cmake/Torch/TorchConfig.cmake" 2>/dev/null && abi=0
else
  prefix=$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  abi=$("$python" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  echo "pip torch $("$python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
fi
if [[ $abi != 1 ]]; then
  # yaml-cpp and the other Debian C++ libraries use the C++11 ABI; mixing
  # the two ABIs links but breaks every std::string that crosses over.
  echo "error: this LibTorch uses the pre-C++11 ABI (_GLIBCXX_USE_CXX11_ABI=0); use a cxx11-ABI LibTorch zip or a" \
       "torch wheel built with it (torch >= 2.7 on PyPI)" >&2
  exit 2
fi

extra=()
if [[ -n ${DEPS:-} ]]; then
  extra+=("-DCMAKE_PREFIX_PATH=$prefix;$DEPS/usr;$DEPS/usr/lib/x86_64-linux-gnu/cmake")
  extra+=("-DCMAKE_INCLUDE_PATH=$DEPS/usr/include" "-DCMAKE_LIBRARY_PATH=$DEPS/usr/lib/x86_64-linux-gnu")
  export PKG_CONFIG_PATH=$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig
  export LD_LIBRARY_PATH=$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
else
  extra+=("-DCMAKE_PREFIX_PATH=$prefix")
fi
# NCCL's header, for the NCCL process group: a pip torch depends on the
# nvidia-nccl wheel, which carries it.
if [[ -z ${LIBTORCH:-} ]]; then
  nccl=$("$python" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "include"))' 2>/dev/null || true)
  [[ -n $nccl && -f $nccl/nccl.h ]] && extra+=("-DNCCL_INCLUDE_DIR=$nccl")
fi
cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCPT_BUILD_TESTS=OFF "${extra[@]}"
ninja -C build-cuda cpt-train bench_device
build-cuda/cpt-train version --backends
