#!/usr/bin/env bash
# The main job on the embedded tiny default: plans the CPU smoke run of
# configs/tiny.yaml. (Training itself arrives with the trainer; until then
# this is the --dry-run plan.)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/cpt-train ]] || scripts/build.sh
build/cpt-train --config configs/tiny.yaml --dry-run "$@"
