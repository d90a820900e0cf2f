"""Turns a dictd dictionary (dict-gcide, dict-foldoc) into JSONL documents,
one entry per document, for the demo and the tests.

Usage: dict_to_jsonl.py DICT.dz OUT_PREFIX [--max-bytes N] [--heldout-every K]
Writes OUT_PREFIX-train.jsonl and OUT_PREFIX-heldout.jsonl (every K-th entry).
"""
import argparse
import gzip
import json
import re


def entries(path):
    headword, body = None, []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip() and not line[0].isspace():
                if headword is not None and body:
                    yield headword, body
                headword, body = line.strip(), []
            elif headword is not None:
                body.append(line.strip())
    if headword is not None and body:
        yield headword, body


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("dictionary")
    parser.add_argument("out_prefix")
    parser.add_argument("--max-bytes", type=int, default=8_000_000)
    parser.add_argument("--heldout-every", type=int, default=50)
    args = parser.parse_args()
    written = 0
    with open(args.out_prefix + "-train.jsonl", "w", encoding="utf-8") as train, \
            open(args.out_prefix + "-heldout.jsonl", "w", encoding="utf-8") as heldout:
        for i, (headword, body) in enumerate(entries(args.dictionary)):
            text = headword + "\n" + re.sub(r"[ \t]+", " ", "\n".join(body)).strip()
            if len(text) < 40 or headword.startswith("00-database"):
                continue
            out = heldout if i % args.heldout_every == 0 else train
            line = json.dumps({"text": text}, ensure_ascii=False)
            out.write(line + "\n")
            written += len(line)
            if written >= args.max_bytes:
                break


if __name__ == "__main__":
    main()
