"""Best-of-n windows of a generator as a token file: training data for rejection-sampling
fine-tuning (BENCHMARKS.md, issue 14, twenty-first session). Each window is one prompt token and
WINDOW − 1 sampled tokens at T = 1 (no top-k), the best of BEST_OF by the reward model RM
(`nanoreward sample --best-of`; BEST_OF = 1: plain samples, the control); the prompt tokens follow
the first tokens of random windows of DATA_DIR/train.bin, as the judge's windows do.

    python3 scripts/best_of_windows.py NR GENERATOR RM DATA_DIR N BEST_OF OUT_DIR SEED [WINDOW]

Writes OUT_DIR/train.bin (N · WINDOW uint16 tokens) with DATA_DIR's val.bin and meta.pkl beside it
(a data_dir for `nanoreward train`), through OUT_DIR.tmp. Character-level corpora only.
"""
import collections
import os
import pickle
import random
import shutil
import subprocess
import sys

import numpy as np

SEPARATOR = "\n---------------\n"


def windows(nr, generator, rm, token, k, best_of, seed, window):
    """`k` windows after the prompt `token`, as text, from `nanoreward sample`."""
    args = [nr, "sample", f"--checkpoint={generator}", f"--start={token}", f"--num-samples={k}",
            f"--max-new-tokens={window - 1}", "--temperature=1.0", "--top-k=0", f"--seed={seed}"]
    if best_of > 1:
        args += [f"--best-of={best_of}", f"--reward-model={rm}"]
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"nanoreward sample failed: {run.stderr.strip()}")
    texts = [t for t in run.stdout.split(SEPARATOR) if t]
    if len(texts) != k or any(len(t) != window for t in texts):
        sys.exit(f"nanoreward sample printed {len(texts)} windows for {k} (a sample holding the separator?)")
    return texts


def main(nr, generator, rm, data, n, best_of, out, seed, window=64):
    try:
        meta = pickle.load(open(os.path.join(data, "meta.pkl"), "rb"))
        train = np.fromfile(os.path.join(data, "train.bin"), dtype=np.uint16)
    except OSError as e:
        sys.exit(f"{data}: needs train.bin and a character-level meta.pkl ({e})")
    if len(train) <= window or n < 1 or best_of < 1:
        sys.exit(f"need N ≥ 1, BEST_OF ≥ 1 and a train.bin longer than a window of {window}")
    rng = random.Random(1000 + seed)
    firsts = collections.Counter(int(train[rng.randrange(len(train) - window)]) for _ in range(n))
    tokens = []
    for i, (t, k) in enumerate(sorted(firsts.items())):
        for text in windows(nr, generator, rm, meta["itos"][t], k, best_of, seed * 1000 + i, window):
            tokens.extend(meta["stoi"][c] for c in text)
    shutil.rmtree(out + ".tmp", ignore_errors=True)
    os.makedirs(out + ".tmp")
    np.array(tokens, dtype=np.uint16).tofile(os.path.join(out + ".tmp", "train.bin"))
    for f in ("val.bin", "meta.pkl"):
        shutil.copy(os.path.join(data, f), os.path.join(out + ".tmp", f))
    shutil.rmtree(out, ignore_errors=True)
    os.rename(out + ".tmp", out)
    print(f"{n} windows of {window} tokens (best of {best_of}) from {len(firsts)} prompt tokens into {out}")


if __name__ == "__main__":
    if len(sys.argv) not in (9, 10):
        sys.exit(__doc__)
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), a[6], int(a[7]), *(int(x) for x in a[8:]))
