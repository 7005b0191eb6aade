"""An independent NumPy forward pass of nanoGPT's GPT, for checking nanoreward's .pt import and
export without PyTorch.

    python3 scripts/numpy_gpt.py logits CKPT.pt 1,5,2,9        # JSON [T][vocab] logits
    python3 scripts/numpy_gpt.py fixture OUT.pt [--no-bias] [--compiled]   # write a tiny checkpoint

The fixture is a nanoGPT-style checkpoint dict ({'model', 'model_args', 'iter_num',
'best_val_loss', 'config'}) with seeded random weights, written by scripts/torchzip.py.
"""

import collections
import json
import math
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torchzip  # noqa: E402


def fixture(path, bias=True, compiled=False):
    args = dict(n_layer=2, n_head=2, n_embd=16, block_size=8, bias=bias, vocab_size=11, dropout=0.0)
    rng = random.Random(7 if bias else 8)
    c, v, bs = args["n_embd"], args["vocab_size"], args["block_size"]
    sd = collections.OrderedDict()

    def t(name, *shape, scale=0.3, const=None):
        n = 1
        for d in shape:
            n *= d
        vals = [const] * n if const is not None else [rng.gauss(0.0, scale) for _ in range(n)]
        sd[name] = torchzip.Tensor(vals, shape)

    t("transformer.wte.weight", v, c)
    t("transformer.wpe.weight", bs, c)
    for i in range(args["n_layer"]):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            t(p + ln + ".weight", c, scale=0.2)
            sd[p + ln + ".weight"].values = [1.0 + x for x in sd[p + ln + ".weight"].values]
            if bias:
                t(p + ln + ".bias", c, scale=0.1)
        for name, shape in (("attn.c_attn", (3 * c, c)), ("attn.c_proj", (c, c)),
                            ("mlp.c_fc", (4 * c, c)), ("mlp.c_proj", (c, 4 * c))):
            t(p + name + ".weight", *shape, scale=0.2)
            if bias:
                t(p + name + ".bias", shape[0], scale=0.1)
    t("transformer.ln_f.weight", c, scale=0.2)
    sd["transformer.ln_f.weight"].values = [1.0 + x for x in sd["transformer.ln_f.weight"].values]
    if bias:
        t("transformer.ln_f.bias", c, scale=0.1)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied, stored twice like torch.save does
    if compiled:
        sd = collections.OrderedDict(("_orig_mod." + k, x) for k, x in sd.items())
    ckpt = {"model": sd, "optimizer": {}, "model_args": args, "iter_num": 250,
            "best_val_loss": 1.4697, "config": {"dataset": "shakespeare_char", "batch_size": 12}}
    torchzip.save(ckpt, path, archive=os.path.splitext(os.path.basename(path))[0])


def logits(path, ids):
    import numpy as np

    ck = torchzip.load(path)
    a = ck["model_args"]
    sd = {k.removeprefix("_orig_mod."): np.asarray(x, dtype=np.float64) for k, x in ck["model"].items()}
    c, nh = a["n_embd"], a["n_head"]
    erf = np.vectorize(math.erf)

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        y = (x - mu) / np.sqrt(var + 1e-5) * sd[p + ".weight"]
        return y + sd[p + ".bias"] if p + ".bias" in sd else y

    def lin(x, p):
        y = x @ sd[p + ".weight"].T
        return y + sd[p + ".bias"] if p + ".bias" in sd else y

    t = len(ids)
    x = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][:t]
    mask = np.tril(np.ones((t, t), dtype=bool))
    for i in range(a["n_layer"]):
        p = f"transformer.h.{i}."
        qkv = lin(ln(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (qkv[:, j * c:(j + 1) * c].reshape(t, nh, c // nh).transpose(1, 0, 2) for j in range(3))
        att = q @ k.transpose(0, 2, 1) / math.sqrt(c // nh)
        att = np.where(mask, att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(t, c)
        x = x + lin(y, p + "attn.c_proj")
        h = lin(ln(x, p + "ln_2"), p + "mlp.c_fc")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = x + lin(h, p + "mlp.c_proj")
    x = ln(x, "transformer.ln_f")
    return x @ sd["transformer.wte.weight"].T


if __name__ == "__main__":
    if sys.argv[1] == "fixture":
        fixture(sys.argv[2], bias="--no-bias" not in sys.argv, compiled="--compiled" in sys.argv)
    elif sys.argv[1] == "logits":
        ids = [int(s) for s in sys.argv[3].split(",")]
        print(json.dumps(logits(sys.argv[2], ids).tolist()))
    else:
        sys.exit(__doc__)
