"""Runs mergekit itself on a merge config and compares its output with ours.

  mergekit_compare.py CONFIG OURS [--rtol R | --exact | --structure]
                      [--consensus count] [--stable-sort] [--keep DIR]

Runs mergekit-yaml's own entry point on CONFIG (the venv's mergekit, on the
CPU, lazy unpickling, no tokenizer copy) into a temporary directory, then requires OURS (the output of
`cpt-train merge` on the same CONFIG) to hold the same tensor names, and for
each tensor the same dtype, the same shape and the same values: bit-identical
with --exact, else max|ours - mergekit| <= R * max|mergekit| per tensor
(default R = 1e-6). --consensus count makes the config's merge method elect
signs by count, with mergekit's own get_mask(method="count"): mergekit
implements that consensus but exposes it through no method name, and
ignores a config's `consensus_method` key. --stable-sort: mergekit's
magnitude pruning ranks |delta| with torch.argsort (breadcrumbs with
torch.sort), which without
stable=True breaks ties at the density cut in an order torch leaves
undefined; this makes that sort stable (equal values: lower index first),
the rule cpt-train documents, for inputs with many ties (bf16). --structure compares names, dtypes and shapes only (for
DARE, whose random drop differs between the two). Prints one line per mismatch and exits 1 on any.
"""
import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
import tempfile
import traceback

import numpy as np
from safetensors import safe_open


def load(directory):
    index = os.path.join(directory, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    tensors = {}
    for name in files:
        # framework "pt" keeps bf16 (numpy has none); compared as fp32 after
        # the dtype check.
        with safe_open(os.path.join(directory, name), framework="pt") as f:
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    return tensors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("ours")
    parser.add_argument("--rtol", type=float, default=1e-6)
    parser.add_argument("--exact", action="store_true")
    parser.add_argument("--structure", action="store_true")
    parser.add_argument("--consensus", choices=["count"])
    parser.add_argument("--stable-sort", action="store_true")
    parser.add_argument("--keep", help="write mergekit's output here instead of a temporary directory")
    args = parser.parse_args()

    import yaml
    from mergekit.merge_methods import registry
    from mergekit.merge_methods.generalized_task_arithmetic import ConsensusMethod
    from mergekit.scripts.run_yaml import main as mergekit_yaml

    if args.stable_sort:
        import functools
        import torch
        torch.argsort = functools.partial(torch.argsort, stable=True)
        torch.sort = functools.partial(torch.sort, stable=True)
    if args.consensus:
        method = yaml.safe_load(open(args.config))["merge_method"]
        registry._METHODS[method] = dataclasses.replace(registry._METHODS[method],
                                                        consensus_method=ConsensusMethod(args.consensus))
    with tempfile.TemporaryDirectory() as scratch:
        theirs_dir = args.keep or os.path.join(scratch, "mergekit")
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                mergekit_yaml([args.config, theirs_dir, "--no-cuda", "--lazy-unpickle", "--no-copy-tokenizer",
                               "--no-write-model-card", "--quiet"], standalone_mode=False)
        except Exception:
            print(f"mergekit-yaml {args.config} failed:\n{log.getvalue()[-3000:]}{traceback.format_exc()}")
            return 1
        theirs = load(theirs_dir)
    ours = load(args.ours)

    problems = []
    for name in sorted(set(theirs) - set(ours)):
        problems.append(f"{name}: written by mergekit, missing from ours")
    for name in sorted(set(ours) - set(theirs)):
        problems.append(f"{name}: in ours, not written by mergekit")
    worst = 0.0
    for name in sorted(set(theirs) & set(ours)):
        a, b = ours[name], theirs[name]
        if a.dtype != b.dtype:
            problems.append(f"{name}: dtype {a.dtype} in ours, {b.dtype} in mergekit's")
            continue
        if tuple(a.shape) != tuple(b.shape):
            problems.append(f"{name}: shape {tuple(a.shape)} in ours, {tuple(b.shape)} in mergekit's")
            continue
        if args.structure:
            continue
        if args.exact:
            if not a.equal(b):
                count = int((a != b).sum())
                problems.append(f"{name}: {count} of {a.numel()} values differ (expected bit-identical)")
            continue
        x, y = a.double().numpy(), b.double().numpy()
        scale = max(float(np.abs(y).max()), 1e-30)
        error = float(np.abs(x - y).max()) / scale
        worst = max(worst, error)
        if error > args.rtol:
            at = int(np.abs(x - y).argmax())
            problems.append(f"{name}: max relative difference {error:.3g} > {args.rtol:g} "
                            f"(element {at}: ours {x.flat[at]!r}, mergekit {y.flat[at]!r})")
    for line in problems:
        print(line)
    print(f"{len(theirs)} tensors compared with mergekit, worst relative difference {worst:.3g}, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
