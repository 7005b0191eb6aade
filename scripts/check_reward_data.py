"""Reads a reward dataset split with the seed's numpy snippet and prints a JSON summary.

usage: python3 scripts/check_reward_data.py DIR SPLIT
"""
import json
import os
import sys

import numpy as np

d, split = sys.argv[1], sys.argv[2]
meta = {}
with open(os.path.join(d, f"{split}_metadata.txt")) as f:
    for line in f:
        k, _, v = line.partition(":")
        meta[k.strip()] = v.strip()
block_size = int(meta["block_size"])
x = np.fromfile(os.path.join(d, f"{split}_x.bin"), dtype=np.uint16).reshape(-1, block_size)
y = np.fromfile(os.path.join(d, f"{split}_y.bin"), dtype=np.float32).reshape(-1, 2)
assert x.shape[0] == y.shape[0] == int(meta["num_samples"])
assert np.allclose(y.sum(axis=1), 1.0, atol=1e-6)
print(json.dumps({
    "num_samples": int(x.shape[0]),
    "y_mean": [float(v) for v in y.mean(axis=0)],
    "x0": [int(t) for t in x[0]],
}))
