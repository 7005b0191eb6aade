"""A reward dataset with negatives off the base's distribution added to its train split: each
negative keeps K natural tokens of a window of NATURAL.bin (K uniform in [1, N−1], as the
dataset's own cuts) and replaces the other N−K by tokens the base would not write — half drawn
uniformly from the vocabulary, half the window's own continuation shuffled — labelled
[K/N, (N−K)/N] like every other sample. The val split is copied unchanged, so the reward model's
evaluation stays comparable. A detector trained only against one generator's continuations
reads "unlike that generator" as natural (scripts/reward_probe.py; BENCHMARKS.md, issue 14,
nineteenth session); these negatives tell it that text unlike both is generated.

`--rows DIR` (repeatable) adds every train row of another reward dataset of the same block size and
vocabulary as well: e.g. a policy's own continuations (`prepare-reward-data --model-path POLICY`),
so the next reward model learns the text a policy found to fool the last one (a GAN's
discriminator step; BENCHMARKS.md, issue 14, twentieth session).

    python3 scripts/reward_negatives.py SRC_DIR NATURAL.bin OUT_DIR N_NEGATIVES [SEED] [--rows DIR ...]

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
    x = np.array([natural[s:s + block] for s in starts], dtype=np.uint16).reshape(n, block)
    ks = rng.integers(1, block, n)
    for i, k in enumerate(ks):
        x[i, k:] = rng.integers(0, vocab, block - k) if i % 2 == 0 else rng.permutation(x[i, k:])
    y = np.stack([ks / block, (block - ks) / block], axis=1).astype(np.float32)
    return x, y


def read_train(d, block, vocab):
    """The train rows `(x, y)` of reward dataset `d`, checked to hold `block`-token windows of `vocab`."""
    path = os.path.join(d, "train_metadata.txt")
    if not os.path.isfile(path):
        sys.exit(f"{d} holds no train_metadata.txt: not a reward dataset (nanoreward prepare-reward-data makes one)")
    meta = open(path, encoding="utf-8").read()
    field = lambda k: re.search(rf"^{k}: (\d+)$", meta, re.M)
    if not field("block_size") or not field("vocab_size"):
        sys.exit(f"{d}/train_metadata.txt names no block_size / vocab_size: not a reward dataset")
    got = int(field("block_size").group(1)), int(field("vocab_size").group(1))
    if block is not None and got != (block, vocab):
        sys.exit(f"{d} holds blocks of {got[0]} tokens of a {got[1]}-token vocabulary, "
                 f"not {block} of {vocab}: make it from the same corpus and block size")
    x = np.fromfile(os.path.join(d, "train_x.bin"), dtype=np.uint16).reshape(-1, got[0])
    y = np.fromfile(os.path.join(d, "train_y.bin"), dtype=np.float32).reshape(-1, 2)
    return meta, got, x, y


def metadata(text, x, y, n_neg, rows):
    n = len(x)
    pair = lambda a: f"{a[0]:.6f}, {a[1]:.6f}"
    for key, value in [("num_samples", str(n)), ("x_shape", f"({n}, {x.shape[1]})"),
                       ("y_shape", f"({n}, 2)"), ("y_min", pair(y.min(0))), ("y_max", pair(y.max(0))),
                       ("y_mean", pair(y.mean(0))), ("y_std", pair(y.std(0)))]:
        text = re.sub(rf"^{key}: .*$", f"{key}: {value}", text, flags=re.M)
    added = [f"{n_neg} off-distribution negatives (scripts/reward_negatives.py)"] if n_neg else []
    added += [f"{n} rows of {d} (scripts/reward_negatives.py --rows)" for d, n in rows]
    return re.sub(r"^(source: .*)$", lambda m: " + ".join([m.group(1)] + added), text, flags=re.M)


def main(src, natural_path, out, n_neg, seed, row_dirs):
    meta, (block, vocab), x, y = read_train(src, None, None)
    natural = np.fromfile(natural_path, dtype=np.uint16)
    if len(natural) <= block:
        sys.exit(f"{natural_path} holds {len(natural)} tokens, fewer than a block of {block}")
    rng = np.random.default_rng(seed)
    nx, ny = negatives(natural, n_neg, block, vocab, rng)
    extra = [read_train(d, block, vocab)[2:] for d in row_dirs]
    xs, ys = [x, nx] + [e[0] for e in extra], [y, ny] + [e[1] for e in extra]
    order = rng.permutation(sum(len(v) for v in xs))
    x, y = np.concatenate(xs)[order], np.concatenate(ys)[order]
    os.makedirs(out, exist_ok=True)
    for f in ("val_x.bin", "val_y.bin", "val_metadata.txt"):
        shutil.copy(os.path.join(src, f), os.path.join(out, f))
    added = [(d, len(e[0])) for d, e in zip(row_dirs, extra)]
    parts = {"train_x.bin": x.tobytes(), "train_y.bin": y.tobytes(),
             "train_metadata.txt": metadata(meta, x, y, n_neg, added).encode("utf-8")}
    for name, data in parts.items():
        with open(os.path.join(out, name + ".tmp"), "wb") as f:
            f.write(data)
    for name in parts:
        os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
    print(f"{out}: {len(x)} train samples ({n_neg} negatives, {sum(n for _, n in added)} rows of other "
          "datasets), val copied")


if __name__ == "__main__":
    args, row_dirs = sys.argv[1:], []
    while "--rows" in args:
        i = args.index("--rows")
        if i + 1 >= len(args):
            sys.exit("--rows takes a reward dataset directory")
        row_dirs.append(args[i + 1])
        del args[i:i + 2]
    if len(args) not in (4, 5) or not all(a.isdigit() for a in args[3:]):
        sys.exit(__doc__)
    main(args[0], args[1], args[2], int(args[3]), int(args[4]) if len(args) == 5 else 0, row_dirs)
