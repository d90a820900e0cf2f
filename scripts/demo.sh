#!/usr/bin/env bash
# The main job on the embedded tiny default, on two CPU cores in a few minutes:
#   1. builds, and makes the tiny corpus from Debian's dictionaries: FOLDOC
#      (computing) is the domain, GCIDE (general English) the general text;
#   2. pre-trains a tiny base on general text only (runs/tiny-base);
#   3. continues pre-training that base on the domain with 20% general
#      replay (configs/tiny.yaml, runs/tiny);
#   4. prints domain and general held-out loss before and after the CPT;
#   5. sweeps a SLERP merge of the base and the CPT model over t = 0…1 on
#      both eval sets and writes the best domain model whose general loss
#      stays within 1% of the base's (runs/tiny-merged);
#   6. writes the run's report, runs/tiny/report.html, sweep included.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x build/cpt-train ]] || scripts/build.sh
scripts/make-tiny-data.sh
build/cpt-train data preview --config configs/tiny.yaml --samples 1000 --show 1

base_steps=150
if [[ ! -f runs/tiny-base/checkpoints/step-$(printf %08d $base_steps)/model.safetensors ]]; then
  build/cpt-train --config configs/tiny.yaml --resume auto \
    --set run.name=tiny-base --set run.output_dir=runs/tiny-base \
    --set "data.sources=[{name: general, prefix: runs/tiny-data/gcide-train}]" \
    --set train.steps=$base_steps --set checkpoint.every_steps=50 --set eval.every_steps=50
fi
build/cpt-train --config configs/tiny.yaml --resume auto \
  --set model.init_from=runs/tiny-base/checkpoints/step-$(printf %08d $base_steps) "$@"

/usr/bin/python3 - <<'PY'
import json
rows = [json.loads(line) for line in open("runs/tiny/metrics.jsonl")]
evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
before, after = evals[0], evals[-1]
print("\nheld-out loss      before CPT   after CPT")
for name in ("computing", "general"):
    key = f"eval/{name}/loss"
    print(f"  {name:<14} {before[key]:>12.3f} {after[key]:>11.3f}")
print(f"(steps {before['step']} -> {after['step']}; the domain loss falls, the general loss shows any forgetting)")
PY
cat > runs/tiny-slerp.yaml <<'YAML'
# The tiny base and its CPT, merged as mergekit would (the sweep sets t).
merge_method: slerp
base_model: runs/tiny-base
models:
  - model: runs/tiny-base
  - model: runs/tiny
parameters:
  t: 0.5
YAML
rm -rf runs/tiny-merged
echo
build/cpt-train merge --config runs/tiny-slerp.yaml --sweep --eval-config configs/tiny.yaml \
  --pick "general <= base + 1%" --output runs/tiny-merged

build/cpt-train report runs/tiny
echo "report: runs/tiny/report.html (curves per source and eval set, the mix, the checkpoints, the merge sweep; open it offline)"
echo "sweep table: runs/tiny/sweeps/tiny-slerp.json; picked merge: runs/tiny-merged"
