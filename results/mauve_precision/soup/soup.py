#!/usr/bin/env python3
"""Weight interpolation of two generator checkpoints of one architecture (PLAN.md, "weight interpolation").

    python3 soup.py A B ALPHA OUT    # OUT/model.safetensors = A + ALPHA * (B - A), tensor by tensor

A and B are nanoreward checkpoint directories (config.json, model.safetensors, meta.pkl); OUT gets A's config.json
and meta.pkl and no optimizer or train state. ALPHA in (0, 1) interpolates, above 1 extrapolates from A through B.
Reads and writes the safetensors layout directly (8-byte header length, JSON header, raw little-endian data), so
it needs NumPy only. Files are written under a temporary name and renamed.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64}


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", None)
    tensors = {}
    for name, t in header.items():
        if t["dtype"] not in DTYPES:
            sys.exit(f"{path}: tensor {name} has dtype {t['dtype']}; only F32/F64 weights can be interpolated")
        lo, hi = t["data_offsets"]
        tensors[name] = np.frombuffer(data[lo:hi], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return tensors, meta


def write(path, tensors, meta):
    header, chunks, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, a in tensors.items():
        b = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        dtype = next(k for k, v in DTYPES.items() if v == a.dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    a_dir, b_dir, alpha, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    cfg_a = json.load(open(os.path.join(a_dir, "config.json")))
    cfg_b = json.load(open(os.path.join(b_dir, "config.json")))
    if cfg_a != cfg_b:
        sys.exit(f"{a_dir} and {b_dir} have different config.json: only one architecture can be interpolated")
    a, meta = read(os.path.join(a_dir, "model.safetensors"))
    b, _ = read(os.path.join(b_dir, "model.safetensors"))
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        sys.exit(f"{a_dir} and {b_dir} hold different tensors")
    mixed = {k: (a[k] + alpha * (b[k] - a[k])).astype(a[k].dtype) for k in a}
    os.makedirs(out, exist_ok=True)
    for f in ["config.json", "meta.pkl"]:
        if os.path.exists(os.path.join(a_dir, f)):
            shutil.copyfile(os.path.join(a_dir, f), os.path.join(out, f + ".tmp"))
            os.replace(os.path.join(out, f + ".tmp"), os.path.join(out, f))
    write(os.path.join(out, "model.safetensors"), mixed, meta)
    with open(os.path.join(out, "soup.json.tmp"), "w") as f:
        json.dump({"a": a_dir, "b": b_dir, "alpha": alpha}, f)
    os.replace(os.path.join(out, "soup.json.tmp"), os.path.join(out, "soup.json"))


if __name__ == "__main__":
    main()
