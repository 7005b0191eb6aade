"""How much of the reward val text's vocabulary a stretch of natural text adds, by where it lies.

    python3 scripts/lexicon_proximity.py DATA RD

DATA is a `prepare --reward_split` folder (meta.pkl, train.bin, reward.bin, val.bin, in corpus
order train, reward, val); RD a `prepare-reward-data --input_mode heldout --val_bin DATA/reward.bin`
output made without --extra_train_bin (its heldout_source/ holds the reward train and val text).
Prints the share of the reward val text's words (runs of letters and apostrophes) unknown to
train.bin plus the reward train text, the share that val.bin (the text right after the reward val
text) makes known, and for stretches of the same length elsewhere the share of words known only
through that stretch: next to the reward val text, or further away.
"""
import pickle
import re
import sys

import numpy as np


def main(data, rd):
    with open(f"{data}/meta.pkl", "rb") as f:
        itos = pickle.load(f)["itos"]

    def read(path):
        return np.fromfile(path, dtype=np.uint16)

    def words(ids):
        return re.findall(r"[A-Za-z']+", "".join(itos[i] for i in ids.tolist()))

    def vocab(ids):
        return set(words(ids))

    train, val = read(f"{data}/train.bin"), read(f"{data}/val.bin")
    rtrain = read(f"{rd}/heldout_source/heldout_train.bin")
    judged = words(read(f"{rd}/heldout_source/heldout_val.bin"))
    known = np.concatenate([train, rtrain])
    base, extra, n, length = vocab(known), vocab(val), len(known), len(val)

    def share(pred):
        return sum(1 for w in judged if pred(w)) / len(judged)

    print(f"reward val text: {len(judged)} words; unknown to train.bin + reward train text "
          f"{share(lambda w: w not in base):.2%}; made known by val.bin {share(lambda w: w not in base and w in extra):.2%}")
    for name, lo in [("just before the reward val text (the reward train text's end)", n - length),
                     ("the reward train text's start", len(train)),
                     ("the middle of train.bin", len(train) // 2),
                     ("the start of train.bin", 0)]:
        rest = vocab(np.concatenate([known[:lo], known[lo + length:]]))
        here = vocab(known[lo:lo + length])
        print(f"known only through the {length} tokens at {name}: {share(lambda w: w not in rest and w in here):.2%}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
