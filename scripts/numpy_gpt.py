"""An independent NumPy forward pass of nanoGPT's GPT, for checking nanoreward's .pt import and
export without PyTorch.

    python3 scripts/numpy_gpt.py logits CKPT.pt 1,5,2,9        # JSON [T][vocab] logits
    python3 scripts/numpy_gpt.py hf_logits HF_DIR 1,5,2,9      # the same of an export-hf directory
    python3 scripts/numpy_gpt.py hf_reward HF_DIR 1,5,2,9      # [P(natural), P(synthetic)], pooled head
    python3 scripts/numpy_gpt.py fixture OUT.pt [--no-bias] [--compiled]   # write a tiny checkpoint
    python3 scripts/numpy_gpt.py zeroshot CKPT.pt 1,5,2,9 [TEMPERATURE TOP_K]  # JSON token stats

`zeroshot` is the independent check of nanoreward's white-box features and zero-shot detectors:
per token t >= 1 of the window, under q = softmax(logits / T) restricted to the top k, log q(x_t)
(floored at -30), the entropy, the variance of log q, the rank of x_t and the mass ranked above it;
and, read through the raw model, the window's mean log-likelihood, mean log-rank, mean entropy,
Fast-DetectGPT's analytic criterion and single-model Binoculars.

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
    return hidden(sd, a, ids) @ sd["transformer.wte.weight"].T


def read_safetensors(path):
    """Every tensor of a safetensors file (F32), read from the format's definition: an 8-byte
    little-endian header length, a JSON header of dtype/shape/data_offsets, then the data."""
    import numpy as np

    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, h in header.items():
        if name == "__metadata__":
            continue
        assert h["dtype"] == "F32", h["dtype"]
        s, e = h["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + s:8 + n + e], dtype="<f4").astype(np.float64).reshape(h["shape"])
    return out


def hf_model(d):
    """A Hugging Face GPT-2 directory as nanoGPT tensors and model_args: Conv1D weights [in, out]
    transposed to Linear [out, in]."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["activation_function"] == "gelu" and cfg["layer_norm_epsilon"] == 1e-5, cfg
    sd = {}
    for k, x in read_safetensors(os.path.join(d, "model.safetensors")).items():
        conv = k.split(".")[-2] in ("c_attn", "c_proj", "c_fc") and k.endswith(".weight")
        sd[k] = x.T if conv else x
    a = dict(n_embd=cfg["n_embd"], n_head=cfg["n_head"], n_layer=cfg["n_layer"])
    return sd, a


def hf_logits(d, ids):
    sd, a = hf_model(d)
    return hidden(sd, a, ids) @ sd["transformer.wte.weight"].T


def hf_reward(d, ids):
    """P(natural) of a pooled reward head, computed as the exported README says."""
    import numpy as np

    sd, a = hf_model(d)
    rc = json.load(open(os.path.join(d, "reward_config.json")))
    assert rc["reward_head"] == "pooled", rc
    head = read_safetensors(os.path.join(d, "reward_head.safetensors"))
    h = hidden(sd, a, ids)
    pooled = h[-1] if rc["pooling"] == "last" else h.mean(0)
    z = np.maximum(head["reward_head.0.weight"] @ pooled + head["reward_head.0.bias"], 0.0)
    lg = head["reward_head.2.weight"] @ z + head["reward_head.2.bias"]
    e = np.exp(lg - lg.max())
    return (e / e.sum()).tolist()


def hidden(sd, a, ids):
    """The final states (after ln_f) of nanoGPT's GPT with tensors sd on token ids."""
    import numpy as np

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
    return ln(x, "transformer.ln_f")


def token_stats(row, x, temperature=1.0, top_k=0):
    import numpy as np

    z = np.asarray(row, dtype=np.float64) / temperature
    if top_k and top_k < len(z):
        kth = np.sort(z)[::-1][top_k - 1]
        z = np.where(z < kth, -np.inf, z)
    lq = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    q = np.exp(lq)
    keep = np.isfinite(lq)
    h = -(q[keep] * lq[keep]).sum()
    var = (q[keep] * lq[keep] ** 2).sum() - h * h
    lx = lq[x]
    above = q[keep & (lq > lx)].sum()
    rank = 1 + int((keep & (lq > lx)).sum())
    return dict(log_q=max(lx, -30.0), entropy=h, var=max(var, 0.0), rank=rank, above=above)


def zeroshot(path, ids, temperature=1.0, top_k=0):
    lg = logits(path, ids)
    feats = [token_stats(lg[t - 1], ids[t], temperature, top_k) for t in range(1, len(ids))]
    raw = [token_stats(lg[t - 1], ids[t]) for t in range(1, len(ids))]
    n = len(raw)
    ll = sum(s["log_q"] for s in raw)
    h = sum(s["entropy"] for s in raw)
    var = sum(s["var"] for s in raw)
    scores = dict(loglik=ll / n, logrank=sum(math.log(s["rank"]) for s in raw) / n,
                  entropy=h / n, fast_detect=(ll + h) / math.sqrt(var), binoculars=-ll / h)
    return dict(tokens=feats, scores=scores)


if __name__ == "__main__":
    if sys.argv[1] == "fixture":
        fixture(sys.argv[2], bias="--no-bias" not in sys.argv, compiled="--compiled" in sys.argv)
    elif sys.argv[1] == "zeroshot":
        ids = [int(s) for s in sys.argv[3].split(",")]
        t, k = (float(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else (1.0, 0)
        print(json.dumps(zeroshot(sys.argv[2], ids, t, k)))
    elif sys.argv[1] in ("hf_logits", "hf_reward"):
        ids = [int(s) for s in sys.argv[3].split(",")]
        f = hf_logits if sys.argv[1] == "hf_logits" else hf_reward
        print(json.dumps(f(sys.argv[2], ids).tolist() if f is hf_logits else f(sys.argv[2], ids)))
    elif sys.argv[1] == "logits":
        ids = [int(s) for s in sys.argv[3].split(",")]
        print(json.dumps(logits(sys.argv[2], ids).tolist()))
    else:
        sys.exit(__doc__)
