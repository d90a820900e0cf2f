"""Independent numpy implementation of the merge formulas (mergekit's, as
written in shared/reference/formats.md), for the merge tests.

Usage: merge_reference.py SPEC.json
SPEC: {"method", "models": [dirs], "base": index or null, "output": dir,
       "weights": [...], "densities": [...], "gamma": g, "t": scalar or list,
       "normalize": bool, "rescale": bool, "lambda": x, "consensus": "sum"|"count"|null,
       "tolerance": 1e-6}
Prints the worst relative error and exits 1 when it is above the tolerance.
For DARE (random drop) it checks the kept fraction and the L1 rescale instead.
"""
import json
import os
import re
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = data[begin:end]
        if entry["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype=np.float32)
        elif entry["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif entry["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        else:
            raise ValueError(entry["dtype"])
        out[name] = arr.reshape(entry["shape"])
    return out, header.get("__metadata__", {})


def load_model(d):
    index = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(index):
        for shard in sorted(set(json.load(open(index))["weight_map"].values())):
            tensors.update(read_safetensors(os.path.join(d, shard))[0])
    else:
        tensors, meta = read_safetensors(os.path.join(d, "model.safetensors"))
        assert meta.get("format") == "pt", meta
    return tensors


def layer_t(name, layers):
    m = re.match(r"model\.layers\.(\d+)\.", name)
    if not m:
        return 1.0 if "embed_tokens" not in name else 0.0
    return int(m.group(1)) / (layers - 1) if layers > 1 else 1.0


def value_at(setting, t):
    if isinstance(setting, list):
        scaled = t * (len(setting) - 1)
        i0 = int(scaled)
        i1 = min(len(setting) - 1, i0 + 1)
        frac = scaled - i0
        return (1 - frac) * setting[i0] + frac * setting[i1]
    return setting


def linear(xs, ws, normalize):
    res = sum(w * x for w, x in zip(ws, xs))
    if normalize:
        res = res / sum(ws)
    return res


def slerp(a, b, t):
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    an = a64 / na if na > 1e-8 else a64
    bn = b64 / nb if nb > 1e-8 else b64
    dot = float(np.sum(an * bn))
    if abs(dot) > 0.9995:
        return (1 - t) * a + t * b
    theta = np.arccos(dot)
    s = np.sin(theta)
    return (np.sin((1 - t) * theta) / s) * a + (np.sin(t * theta) / s) * b


def keep_magnitude(delta, density):
    if density >= 1:
        return np.ones(delta.shape, dtype=bool)
    k = int(density * delta.size)
    flat = np.abs(delta).ravel()
    order = np.argsort(flat, kind="stable")
    mask = np.zeros(delta.size, dtype=bool)
    mask[order[delta.size - k:]] = True
    return mask.reshape(delta.shape)


def keep_outliers(delta, density, gamma):
    if density >= 1:
        return np.ones(delta.shape, dtype=bool)
    n = delta.size
    target = int(density * n)
    top = int(gamma * n)
    bottom = n - target - top
    if bottom < 0:
        top, bottom = n - target, 0
    order = np.argsort(np.abs(delta).ravel(), kind="stable")
    mask = np.zeros(n, dtype=bool)
    mask[order[bottom:n - top]] = True
    return mask.reshape(delta.shape)


def task_arithmetic(base, xs, ws, spec, kind, densities):
    deltas = []
    for x, density in zip(xs, densities):
        d = (x - base).astype(np.float32)
        if kind["sparsify"] == "magnitude":
            d = d * keep_magnitude(d, density)
        elif kind["sparsify"] == "outliers":
            d = d * keep_outliers(d, density, spec.get("gamma", 0.01))
        deltas.append(d)
    wd = np.stack([np.float32(w) * d for w, d in zip(ws, deltas)])
    w = np.array(ws, dtype=np.float32).reshape((-1,) + (1,) * base.ndim)
    consensus = spec.get("consensus") or kind["consensus"]
    if consensus:
        if consensus == "sum":
            majority = np.where(wd.sum(axis=0) >= 0, 1.0, -1.0)
        else:
            majority = np.where(np.sign(wd).sum(axis=0) >= 0, 1.0, -1.0)
        mask = np.sign(wd) == majority
        mixed = (wd * mask).sum(axis=0)
        divisor = (w * mask).sum(axis=0)
        divisor[divisor == 0] = 1
    else:
        mixed = wd.sum(axis=0)
        divisor = np.broadcast_to(w.sum(axis=0), mixed.shape).copy()
        divisor[np.abs(divisor) < 1e-8] = 1
    if spec["normalize"]:
        mixed = mixed / divisor
    return base + mixed * spec.get("lambda", 1.0)


def model_stock(base, xs):
    offsets = [(x - base).astype(np.float64).ravel() for x in xs]
    cos = []
    for i in range(len(offsets)):
        for j in range(i + 1, len(offsets)):
            cos.append(offsets[i] @ offsets[j] / max(np.linalg.norm(offsets[i]) * np.linalg.norm(offsets[j]), 1e-8))
    c = float(np.mean(cos))
    n = len(xs)
    t = n * c / (1 + (n - 1) * c)
    return t * (sum(xs) / n) + (1 - t) * base


KINDS = {
    "task_arithmetic": {"consensus": None, "sparsify": None},
    "ties": {"consensus": "sum", "sparsify": "magnitude"},
    "dare_ties": {"consensus": "sum", "sparsify": "random"},
    "dare_linear": {"consensus": None, "sparsify": "random"},
    "breadcrumbs": {"consensus": None, "sparsify": "outliers"},
    "breadcrumbs_ties": {"consensus": "sum", "sparsify": "outliers"},
}


def main():
    spec = json.load(open(sys.argv[1]))
    models = [load_model(d) for d in spec["models"]]
    out = load_model(spec["output"])
    layers = json.load(open(os.path.join(spec["models"][0], "config.json")))["num_hidden_layers"]
    base_i = spec.get("base")
    worst = 0.0
    failures = []
    for name in models[0]:
        got = out[name].astype(np.float64)
        xs = [m[name].astype(np.float32) for m in models]
        t = layer_t(name, layers)
        method = spec["method"]
        if method == "linear":
            want = linear(xs, spec["weights"], spec["normalize"])
        elif method == "slerp":
            want = slerp(xs[base_i], xs[1 - base_i], value_at(spec["t"], t))
        elif method == "model_stock":
            want = model_stock(xs[base_i], [x for i, x in enumerate(xs) if i != base_i])
        elif KINDS[method]["sparsify"] == "random":
            base = xs[base_i]
            others = [x for i, x in enumerate(xs) if i != base_i]
            density = spec["densities"][0]
            if density >= 1:
                want = task_arithmetic(base, others, spec["weights"], spec, KINDS[method], spec["densities"])
            else:
                # One task vector, weight 1, no normalisation: out - base = delta * mask * scale.
                delta = (others[0] - base).astype(np.float64)
                change = got - base
                kept = change != 0
                fraction = kept.mean()
                if abs(fraction - density) > 4 * np.sqrt(density * (1 - density) / kept.size) + 1e-3:
                    failures.append(f"{name}: kept {fraction:.4f}, density {density}")
                scale = np.abs(delta).sum() / np.abs(delta[kept]).sum()
                want = base + np.where(kept, delta * scale, 0)
        else:
            others = [x for i, x in enumerate(xs) if i != base_i]
            want = task_arithmetic(xs[base_i], others, spec["weights"], spec, KINDS[method], spec["densities"])
        want = np.asarray(want, dtype=np.float64)
        scale = max(np.abs(want).max(), 1e-30)
        err = float(np.abs(got - want).max() / scale)
        worst = max(worst, err)
        if err > spec.get("tolerance", 1e-6):
            failures.append(f"{name}: relative error {err:.3g}")
    print(json.dumps({"worst_relative_error": worst, "tensors": len(models[0]), "failures": failures[:5]}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
