"""Other ways to read token-head reward models' per-token P(natural) into a boundary, on a reward
dataset's val split: each model re-decoded in NumPy (the change-point posterior's median, written
independently of src/reward/changepoint.rs, so its figures must equal the model's own), the
ensembles of several models, and a constant shift of the estimated cut.

    nanoreward score --checkpoint RM/ckpt --bin RD/val_x.bin --json --tokens > RM.json
    python3 scripts/decode_variants.py RD A.json [B.json ...]

Boundary: mean |round(P·N + c) − K| in tokens; MAE: mean |P − K/N| (as eval-reward reports them).
"""
import json
import sys

import numpy as np


def load(path):
    with open(path) as f:
        windows = json.load(f)["windows"]
    if "per_token" not in windows[0]:
        sys.exit(f"{path} has no per-token scores: score with --json --tokens")
    window_p = np.array([w["p_natural"] for w in windows])
    token_p = np.array([[t["p_natural"] for t in w["per_token"]] for w in windows], dtype=np.float64)
    return window_p, token_p


def posterior(p):
    """P(K = k | x), k = 0 … N, under a uniform prior, for every row of per-token P(natural)."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    log_p, log_q = np.log(p), np.log1p(-p)
    zero = np.zeros((len(p), 1))
    natural_before = np.concatenate([zero, np.cumsum(log_p, 1)], 1)
    generated_before = np.concatenate([zero, np.cumsum(log_q, 1)], 1)
    ll = natural_before + log_q.sum(1, keepdims=True) - generated_before
    w = np.exp(ll - ll.max(1, keepdims=True))
    return w / w.sum(1, keepdims=True)


def median_share(post):
    """The continuous posterior median of K/N (the mass of k spread over [k − ½, k + ½])."""
    n = post.shape[1] - 1
    rows = np.arange(len(post))
    cdf = np.cumsum(post, 1)
    k = (cdf >= 0.5).argmax(1)
    before = cdf[rows, k] - post[rows, k]
    m = k - 0.5 + (0.5 - before) / np.maximum(post[rows, k], 1e-300)
    return np.clip(m, 0, n) / n


def figures(p, k, n, shift=0.0):
    est = np.rint(p * n + shift)
    return np.abs(np.clip(p + shift / n, 0, 1) - k / n).mean(), np.abs(est - k).mean(), (est - k).mean()


def main(rd, paths):
    y = np.fromfile(f"{rd}/val_y.bin", dtype=np.float32).reshape(-1, 2)
    models = [load(path) for path in paths]
    n = models[0][1].shape[1]
    if any(len(wp) != len(y) for wp, _ in models):
        sys.exit(f"every score file must cover {rd}/val_x.bin ({len(y)} windows)")
    k = np.rint(y[:, 0] * n)
    rows = []
    for path, (window_p, token_p) in zip(paths, models):
        rows.append((f"{path} (as scored)", window_p))
        rows.append((f"{path} (NumPy decode)", median_share(posterior(token_p))))
    if len(models) > 1:
        clipped = [np.clip(t, 1e-7, 1 - 1e-7) for _, t in models]
        logit = np.mean([np.log(t) - np.log1p(-t) for t in clipped], 0)
        rows.append(("mean of window P", np.mean([w for w, _ in models], 0)))
        rows.append(("mean of per-token logits", median_share(posterior(1 / (1 + np.exp(-logit))))))
        rows.append(("mean of per-token P", median_share(posterior(np.mean([t for _, t in models], 0)))))
        rows.append(("mean of posteriors", median_share(np.mean([posterior(t) for _, t in models], 0))))
    print("| decode | MAE | boundary | signed |\n| --- | --- | --- | --- |")
    for name, p in rows:
        print("| {} | {:.4f} | {:.3f} | {:+.2f} |".format(name, *figures(p, k, n)))
    print("\nshift c of the first model's estimate, round(P·N + c):")
    for c in [0.0, 0.25, 0.5, 0.75, 1.0]:
        print("  c = {:.2f}: MAE {:.4f}, boundary {:.3f}, signed {:+.2f}".format(c, *figures(models[0][0], k, n, c)))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
