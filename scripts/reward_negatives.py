"""A reward dataset with negatives off the base's distribution added to its train split: each
negative keeps K natural tokens of a window of NATURAL.bin (K uniform in [1, N−1], as the
dataset's own cuts) and replaces the other N−K by tokens the base would not write — half drawn
uniformly from the vocabulary, half the window's own continuation shuffled — labelled
[K/N, (N−K)/N] like every other sample. The val split is copied unchanged, so the reward model's
evaluation stays comparable. A detector trained only against one generator's continuations
reads "unlike that generator" as natural (scripts/reward_probe.py; BENCHMARKS.md, issue 14,
nineteenth session); these negatives tell it that text unlike both is generated.

    python3 scripts/reward_negatives.py SRC_DIR NATURAL.bin OUT_DIR N_NEGATIVES [SEED]

Writes OUT_DIR/{train,val}_{x,y}.bin and {train,val}_metadata.txt (train's through .tmp names,
renamed when complete).
"""
import os
import re
import shutil
import sys

import numpy as np


def negatives(natural, n, block, vocab, rng):
    """`n` rows of `block` tokens and their labels: natural prefixes, off-distribution rests."""
    starts = rng.integers(0, len(natural) - block, n)
    x = np.stack([natural[s:s + block] for s in starts]).astype(np.uint16)
    ks = rng.integers(1, block, n)
    for i, k in enumerate(ks):
        x[i, k:] = rng.integers(0, vocab, block - k) if i % 2 == 0 else rng.permutation(x[i, k:])
    y = np.stack([ks / block, (block - ks) / block], axis=1).astype(np.float32)
    return x, y


def metadata(text, x, y, n_neg):
    n = len(x)
    pair = lambda a: f"{a[0]:.6f}, {a[1]:.6f}"
    for key, value in [("num_samples", str(n)), ("x_shape", f"({n}, {x.shape[1]})"),
                       ("y_shape", f"({n}, 2)"), ("y_min", pair(y.min(0))), ("y_max", pair(y.max(0))),
                       ("y_mean", pair(y.mean(0))), ("y_std", pair(y.std(0)))]:
        text = re.sub(rf"^{key}: .*$", f"{key}: {value}", text, flags=re.M)
    return re.sub(r"^(source: .*)$", rf"\1 + {n_neg} off-distribution negatives (scripts/reward_negatives.py)",
                  text, flags=re.M)


def main(src, natural_path, out, n_neg, seed):
    meta = open(os.path.join(src, "train_metadata.txt"), encoding="utf-8").read()
    field = lambda k: re.search(rf"^{k}: (\d+)$", meta, re.M)
    if not field("block_size") or not field("vocab_size"):
        sys.exit(f"{src}/train_metadata.txt names no block_size / vocab_size: not a reward dataset")
    block, vocab = int(field("block_size").group(1)), int(field("vocab_size").group(1))
    natural = np.fromfile(natural_path, dtype=np.uint16)
    if len(natural) <= block:
        sys.exit(f"{natural_path} holds {len(natural)} tokens, fewer than a block of {block}")
    rng = np.random.default_rng(seed)
    x = np.fromfile(os.path.join(src, "train_x.bin"), dtype=np.uint16).reshape(-1, block)
    y = np.fromfile(os.path.join(src, "train_y.bin"), dtype=np.float32).reshape(-1, 2)
    nx, ny = negatives(natural, n_neg, block, vocab, rng)
    order = rng.permutation(len(x) + n_neg)
    x, y = np.concatenate([x, nx])[order], np.concatenate([y, ny])[order]
    os.makedirs(out, exist_ok=True)
    for f in ("val_x.bin", "val_y.bin", "val_metadata.txt"):
        shutil.copy(os.path.join(src, f), os.path.join(out, f))
    parts = {"train_x.bin": x.tobytes(), "train_y.bin": y.tobytes(),
             "train_metadata.txt": metadata(meta, x, y, n_neg).encode("utf-8")}
    for name, data in parts.items():
        with open(os.path.join(out, name + ".tmp"), "wb") as f:
            f.write(data)
    for name in parts:
        os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
    print(f"{out}: {len(x)} train samples ({n_neg} negatives), val copied")


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) == 6 else 0)
