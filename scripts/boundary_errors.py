"""Where a reward model's boundary error comes from, on a reward dataset's val split.

    nanoreward score --checkpoint RM/ckpt --bin RD/val_x.bin --json > scores.json
    python3 scripts/boundary_errors.py RD scores.json [SHOW]

RD is a `prepare-reward-data --input_mode heldout` output: its val samples are made block by block
(samples_per_chunk per block, in order) from RD/heldout_source/heldout_val.bin, so the natural
text each window was cut from is known. Prints the boundary error |round(P*N) - K| in tokens,
then:
- m, the number of generated tokens right after the cut that equal the natural text's own
  continuation (no detector can see those: the window is natural text up to K + m), the error
  by m, and the error measured against K + m instead of K;
- the tail: the share of windows off by more than 10 tokens, early and late, their share of the
  error, and the mean error if no window were off by more than 10 or 5;
- the error by fifth of the val text in corpus order (the first fifth follows the reward train
  text in a held-out split; how near the judged text is to the text the reward model learned from).
Checks that every window's first K tokens are its block's, and stops if not. With SHOW and scores
from `score --json --tokens`, also prints SHOW windows off by more than 10 tokens each way (drawn
with a fixed seed): the natural and generated text either side of K, and under every character its
P(natural) in tenths (0-9).
"""
import json
import sys

import numpy as np


def main(rd, scores_path):
    with open(f"{rd}/val_metadata.txt") as f:
        meta = dict(line.split(": ", 1) for line in f.read().splitlines() if ": " in line)
    n = int(meta["block_size"])
    per_block = int(meta["samples_per_chunk"])
    x = np.fromfile(f"{rd}/val_x.bin", dtype=np.uint16).reshape(-1, n)
    y = np.fromfile(f"{rd}/val_y.bin", dtype=np.float32).reshape(-1, 2)
    src = np.fromfile(f"{rd}/heldout_source/heldout_val.bin", dtype=np.uint16)
    blocks = src[: len(src) // n * n].reshape(-1, n)
    with open(scores_path) as f:
        windows = json.load(f)["windows"]
    p = np.array([w["p_natural"] for w in windows])
    if len(p) != len(x):
        sys.exit(f"{scores_path} scores {len(p)} windows, {rd} has {len(x)}: score RD/val_x.bin")
    k = np.rint(y[:, 0] * n).astype(int)
    m = np.zeros(len(x), dtype=int)
    for i in range(len(x)):
        b = blocks[i // per_block]
        if not (x[i, : k[i]] == b[: k[i]]).all():
            sys.exit(f"window {i} does not start with block {i // per_block}: not a held-out dataset?")
        while k[i] + m[i] < n and x[i, k[i] + m[i]] == b[k[i] + m[i]]:
            m[i] += 1
    est = np.rint(p * n)
    err = est - k
    a = np.abs(err)
    print(f"windows {len(x)}, MAE {np.abs(p - k / n).mean():.4f}, boundary {a.mean():.3f} tokens, "
          f"median {np.median(a):.1f}, signed mean {err.mean():+.2f}")
    print(f"generated tokens equal to the natural continuation: mean m {m.mean():.3f}, "
          f"m > 0 on {(m > 0).mean():.3f}; boundary against K + m {np.abs(est - k - m).mean():.3f}")
    for lo, hi in [(0, 0), (1, 1), (2, 2), (3, n)]:
        s = (m >= lo) & (m <= hi)
        if s.any():
            label = f"m = {lo}" if lo == hi else f"m >= {lo}"
            print(f"  {label}: share {s.mean():.3f}, boundary {a[s].mean():.2f}, signed {err[s].mean():+.2f}")
    big = a > 10
    print(f"off by > 10 tokens: {big.mean():.3f} of windows (early {(big & (err < 0)).mean():.3f}, "
          f"late {(big & (err > 0)).mean():.3f}), {a[big].sum() / a.sum():.2f} of the error; "
          f"boundary with errors capped at 10: {np.minimum(a, 10).mean():.2f}, at 5: {np.minimum(a, 5).mean():.2f}")
    fifth = np.arange(len(x)) // per_block * 5 // len(blocks)
    print("boundary by fifth of the val text, in corpus order: "
          + " / ".join(f"{a[fifth == q].mean():.2f}" for q in range(5)))
    return k, err, windows


def show(k, err, windows, count):
    """`count` windows of each kind of miss, their text split at K and per-token P(natural)."""
    if "per_token" not in windows[0]:
        sys.exit("showing windows needs per-token scores: score with --json --tokens")
    rng = np.random.default_rng(0)
    for label, miss in [("early", err < -10), ("late", err > 10)]:
        rows = np.flatnonzero(miss)
        print(f"\n{label} misses ({len(rows)}), {min(count, len(rows))} of them:")
        for i in rng.choice(rows, min(count, len(rows)), replace=False):
            tokens = windows[i]["per_token"]
            text = [t["text"] for t in tokens]
            digits = "".join(str(min(9, int(t["p_natural"] * 10))) * len(t["text"]) for t in tokens)
            cut = len("".join(text[: k[i]]))
            print(f"K = {k[i]}, estimate {k[i] + err[i]:.0f}: {''.join(text[: k[i]])!r} || {''.join(text[k[i]:])!r}")
            print(f"  {digits[:cut]} || {digits[cut:]}")


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    k, err, windows = main(sys.argv[1], sys.argv[2])
    if len(sys.argv) == 4:
        show(k, err, windows, int(sys.argv[3]))
