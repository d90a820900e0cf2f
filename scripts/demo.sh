#!/usr/bin/env bash
# The main job on the embedded tiny default: builds, makes the tiny corpus
# (FOLDOC computing text as the domain, GCIDE English as replay), tokenizes
# it, shows the blended stream, and plans the CPU run of configs/tiny.yaml.
# (Training itself arrives with the trainer; until then this ends with the
# --dry-run plan.)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/cpt-train ]] || scripts/build.sh
scripts/make-tiny-data.sh
build/cpt-train data inspect --prefix runs/tiny-data/foldoc-train
build/cpt-train data preview --config configs/tiny.yaml --samples 1000 --show 2
build/cpt-train --config configs/tiny.yaml --dry-run "$@"
