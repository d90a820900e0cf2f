"""The peers' side of scripts/bench-peers.sh: what a user would run instead of
cpt-train, timed on the same inputs in the same run. Each subcommand prints
one JSON line.

  peers.py tokenize-hf MODEL JSONL OUT.bin
      HF tokenizers' batch encoding (encode_batch_fast, RAYON_NUM_THREADS
      workers) of the SentencePiece MODEL as transformers converts it;
      writes the tokens + EOS per document as uint16, for the comparison.
  peers.py compare-tokens MODEL OURS.bin PEER.bin
      where two tokenizations of the same documents (uint16, EOS after each
      document) differ: tokens, documents, and how many of those documents
      the two split with equal total piece scores (ties the Viterbi may
      break either way) under the SentencePiece MODEL.
  peers.py loader SEQ_LEN MICRO RUN MIX TIMED WORKERS CACHE PREFIX:WEIGHT...
      megatron-core's GPTDataset + BlendedDataset for a run of RUN samples,
      behind a torch DataLoader of WORKERS processes: start-up to the first
      micro-batch (index files built into CACHE), TIMED samples' throughput,
      the realised mix of the first MIX samples.
  peers.py checkpoint SAFETENSORS_DIR WORK [PAUSE_S]
      safetensors.torch save_file/load_file and torch.save/load of the
      tensors of a cpt-train checkpoint, fsynced as cpt-train's save is;
      before each save, sync and wait PAUSE_S (as bench_checkpoint does).
  peers.py versions
"""
import json
import os
import sys
import time


def tokenize_hf(model, jsonl, out):
    import numpy as np
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    proto = import_protobuf().ModelProto()
    with open(model, "rb") as f:
        proto.ParseFromString(f.read())
    # Unigram models take (piece, score) pairs, BPE ones a piece -> id map.
    if proto.trainer_spec.model_type == 1:
        vocab = [(p.piece, p.score) for p in proto.pieces]
    else:
        vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    tokenizer = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=True)
    eos = proto.trainer_spec.eos_id
    start = time.perf_counter()
    with open(jsonl, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    encode_s = time.perf_counter() - start
    ids = np.concatenate([np.array(e.ids + [eos], dtype=np.uint16) for e in encodings])
    ids.tofile(out)
    print(json.dumps({"read_s": read_s, "encode_s": encode_s, "tokens": int(ids.size)}))


def compare_tokens(model, ours_bin, peer_bin):
    import math
    import numpy as np
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    with open(model, "rb") as f:
        proto.ParseFromString(f.read())
    scores = [p.score for p in proto.pieces]
    eos = proto.trainer_spec.eos_id
    ours, peer = np.fromfile(ours_bin, dtype=np.uint16), np.fromfile(peer_bin, dtype=np.uint16)
    result = {"tokens": int(ours.size), "peer_tokens": int(peer.size)}
    if ours.size == peer.size:
        result["tokens_differ"] = int((ours != peer).sum())
    documents = [np.split(ids, np.flatnonzero(ids == eos) + 1) for ids in (ours, peer)]
    if len(documents[0]) != len(documents[1]):
        sys.exit(f"compare-tokens: {len(documents[0]) - 1} documents in {ours_bin}, {len(documents[1]) - 1} in {peer_bin}")
    differ = ties = 0
    for a, b in zip(*documents):
        if a.size == b.size and (a == b).all():
            continue
        differ += 1
        # Equal within the float32 rounding of a Viterbi's running score
        # (about 6e-8 of it per step), which is where versions part.
        total_a, total_b = (math.fsum(scores[i] for i in d) for d in (a, b))
        ties += abs(total_a - total_b) <= 1e-6 * abs(total_a) + 1e-4
    result.update(documents=len(documents[0]) - 1, documents_differ=differ, documents_tied=ties)
    print(json.dumps(result))


def loader(seq_len, micro, samples, mix, timed, workers, cache, blend):
    import numpy
    import torch
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    class Tokenizer:  # what GPTDataset reads of one: the EOD and pad ids
        eod = 2
        pad = 0
        vocab_size = 32000
        unique_identifiers = {"class": "bench.peers.Tokenizer"}

    # The builder asks torch.distributed for the rank, as in a training job.
    os.makedirs(cache, exist_ok=True)
    torch.distributed.init_process_group("gloo", init_method=f"file://{cache}/process-group", rank=0, world_size=1)
    prefixes = [p for p, _ in blend]
    weights = [w for _, w in blend]
    start = time.perf_counter()
    config = GPTDatasetConfig(
        random_seed=1234, sequence_length=seq_len, blend=(prefixes, weights), split="100,0,0",
        path_to_cache=cache, tokenizer=Tokenizer(), reset_position_ids=False, reset_attention_mask=False,
        eod_mask_loss=False, create_attention_mask=False, mmap_bin_files=True)
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [samples, 0, 0], lambda: True, config).build()
    batches = iter(torch.utils.data.DataLoader(train, batch_size=micro, num_workers=workers, shuffle=False))
    first = next(batches)
    startup_s = time.perf_counter() - start

    checksum = int(first["tokens"][0, 0])
    start = time.perf_counter()
    for i in range(timed // micro):
        batch = next(batches)
        checksum += int(batch["tokens"][0, i % seq_len])
    throughput_s = time.perf_counter() - start

    # The realised mix: which dataset each of the first `mix` blended
    # samples comes from.
    index = numpy.asarray(train.dataset_index[:mix], dtype=numpy.int64)
    total = sum(weights)
    n = numpy.arange(1, mix + 1, dtype=numpy.float64)
    worst = 0.0
    counts = []
    for s, w in enumerate(weights):
        running = numpy.cumsum(index == s)
        worst = max(worst, float(numpy.max(numpy.abs(running - w / total * n))))
        counts.append(int(running[-1]))
    print(json.dumps({"startup_s": startup_s, "tokens_per_s": (timed // micro) * micro * seq_len / throughput_s,
                      "samples": mix, "counts": counts, "worst_prefix_deviation": worst,
                      "checksum": checksum}))


def fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint(checkpoint_dir, work, pause="0"):
    import torch
    from safetensors.torch import load_file, save_file

    # Every tensor of the checkpoint, under names unique across its files.
    tensors = {}
    for root, _, files in sorted(os.walk(checkpoint_dir)):
        for name in sorted(files):
            if name.endswith(".safetensors"):
                path = os.path.join(root, name)
                for key, value in load_file(path).items():
                    tensors[f"{os.path.relpath(path, checkpoint_dir)}/{key}"] = value
    # Where a load lands: fresh tensors of the same shapes, touched, as a
    # resuming process's model and optimizer state are.
    def fresh_targets():
        return {key: torch.zeros_like(value) for key, value in tensors.items()}
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    os.makedirs(work, exist_ok=True)
    result = {"bytes": nbytes}

    def settle():
        if float(pause) > 0:
            os.sync()
            time.sleep(float(pause))
        # Touch and free 2.5x the bytes about to be written, as
        # bench_checkpoint does before its writes: on a VM that returns freed
        # memory to its host, pages the guest has not used lately cost a
        # host fault on first touch (~3 s a GB here), and which writer met
        # them was an accident of what ran before it.
        primer = torch.empty(nbytes * 5 // 2, dtype=torch.uint8)
        primer[::4096].fill_(1)
        del primer

    path = os.path.join(work, "peer.safetensors")
    settle()
    start = time.perf_counter()
    save_file(tensors, path)
    fsync_file(path)
    result["safetensors_save_s"] = time.perf_counter() - start
    targets = fresh_targets()
    start = time.perf_counter()
    for key, value in load_file(path).items():
        targets[key].copy_(value)
    # The last tensor loaded still holds what it was read into (the file's
    # mapping, or its buffer); cpt-train's load ends with its own released.
    del value
    result["safetensors_load_s"] = time.perf_counter() - start
    os.remove(path)

    path = os.path.join(work, "peer.pt")
    settle()
    start = time.perf_counter()
    torch.save(tensors, path)
    fsync_file(path)
    result["torch_save_s"] = time.perf_counter() - start
    targets = fresh_targets()
    start = time.perf_counter()
    for key, value in torch.load(path, weights_only=True).items():
        targets[key].copy_(value)
    del value
    result["torch_load_s"] = time.perf_counter() - start
    targets = fresh_targets()
    start = time.perf_counter()
    for key, value in torch.load(path, weights_only=True, mmap=True).items():
        targets[key].copy_(value)
    del value
    result["torch_load_mmap_s"] = time.perf_counter() - start
    os.remove(path)
    print(json.dumps(result))


def versions():
    from importlib.metadata import version

    print(json.dumps({name: version(name) for name in
                      ("torch", "transformers", "tokenizers", "safetensors", "mergekit", "megatron-core",
                       "sentencepiece")}))


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "tokenize-hf":
        tokenize_hf(*args)
    elif command == "compare-tokens":
        compare_tokens(*args)
    elif command == "loader":
        blend = [(p.rsplit(":", 1)[0], float(p.rsplit(":", 1)[1])) for p in args[7:]]
        loader(*(int(a) for a in args[:6]), args[6], blend)
    elif command == "checkpoint":
        checkpoint(*args)
    elif command == "versions":
        versions()
    else:
        sys.exit(f"peers.py: unknown command {command!r}")


if __name__ == "__main__":
    main()
