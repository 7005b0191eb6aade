"""Reference for `nanoreward prepare --tokenization char`: nanoGPT's data/shakespeare_char/prepare.py
with numpy's uint16 `tofile` replaced by the standard library's array('H') (the same bytes on a
little-endian machine), so tests can run it without numpy.

usage: python3 scripts/nanogpt_prepare_char.py INPUT.txt OUT_DIR
"""
import os
import pickle
import sys
from array import array

input_file_path, out_dir = sys.argv[1], sys.argv[2]
with open(input_file_path, "r", encoding="utf-8") as f:
    data = f.read()
print(f"length of dataset in characters: {len(data):,}")

chars = sorted(list(set(data)))
vocab_size = len(chars)
print(f"vocab size: {vocab_size:,}")
stoi = {ch: i for i, ch in enumerate(chars)}
itos = {i: ch for i, ch in enumerate(chars)}


def encode(s):
    return [stoi[c] for c in s]


n = len(data)
train_data = data[: int(n * 0.9)]
val_data = data[int(n * 0.9) :]
train_ids = encode(train_data)
val_ids = encode(val_data)
print(f"train has {len(train_ids):,} tokens")
print(f"val has {len(val_ids):,} tokens")

assert sys.byteorder == "little"
os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "train.bin"), "wb") as f:
    array("H", train_ids).tofile(f)
with open(os.path.join(out_dir, "val.bin"), "wb") as f:
    array("H", val_ids).tofile(f)
meta = {"vocab_size": vocab_size, "itos": itos, "stoi": stoi}
with open(os.path.join(out_dir, "meta.pkl"), "wb") as f:
    pickle.dump(meta, f)
