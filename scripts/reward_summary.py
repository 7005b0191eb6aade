"""Summarises reward-model evaluations (eval.json files written by `nanoreward eval-reward`):
one row per run, then the mean and the spread (sample standard deviation, min-max) per group.

    python3 scripts/reward_summary.py GROUP=DIR/eval.json ... > table.md

Runs with the same GROUP name are one configuration over several seeds.
"""
import collections
import json
import statistics
import sys


def fields(ev):
    base = {b["name"]: b["auroc"] for b in ev.get("baselines", [])}
    bb = {b["name"]: b["boundary_mae_tokens"] for b in ev.get("boundary_baselines", [])}
    best = max(base.items(), key=lambda kv: kv[1]) if base else ("-", float("nan"))
    sweep = {t["temperature"]: t["mean_p_natural"] for t in ev.get("temperature_sweep", [])}
    return collections.OrderedDict([
        ("MAE", ev["mae"]), ("MAE 0.5", ev["mae_baseline"]),
        ("boundary", ev["boundary_mae_tokens"]),
        ("bnd z-cp", bb.get("Fast-DetectGPT z change point", float("nan"))),
        ("bnd dict", bb.get("first unknown word", float("nan"))),
        ("AUROC", ev["auroc"]),
        ("CI lo", (ev.get("auroc_ci95") or [float("nan")] * 2)[0]),
        ("CI hi", (ev.get("auroc_ci95") or [float("nan")] * 2)[1]),
        ("loglik", base.get("log-likelihood", ev.get("auroc_loglik_baseline"))),
        ("logrank", base.get("log-rank", float("nan"))),
        ("entropy", base.get("entropy", float("nan"))),
        ("FDGPT", base.get("Fast-DetectGPT", float("nan"))),
        ("Binoc", base.get("Binoculars", float("nan"))),
        ("dict", base.get("dictionary", float("nan"))),
        ("P nat", ev.get("mean_p_natural_text", float("nan"))),
        ("P T0.7", sweep.get(0.7, float("nan"))),
        ("P T1.0", sweep.get(1.0, float("nan"))),
        ("P T1.3", sweep.get(1.3, float("nan"))),
    ])


def fmt(k, v):
    """MAE to 4 decimals (its target, 0.06, is missed or met by thousandths), the rest to 3."""
    return f"{v:.4f}" if k == "MAE" else f"{v:.3f}"


def main(args):
    groups = collections.OrderedDict()
    for a in args:
        name, path = a.split("=", 1)
        with open(path) as f:
            groups.setdefault(name, []).append((path, fields(json.load(f))))
    keys = list(next(iter(groups.values()))[0][1].keys())
    print("| run | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, runs in groups.items():
        for path, f in runs:
            print(f"| {name} ({path}) | " + " | ".join(fmt(k, f[k]) for k in keys) + " |")
    print()
    print("| configuration (seeds) | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, runs in groups.items():
        cells = []
        for k in keys:
            v = [f[k] for _, f in runs]
            if len(v) > 1:
                cells.append(f"{fmt(k, statistics.mean(v))} ± {fmt(k, statistics.stdev(v))} ({fmt(k, min(v))}–{fmt(k, max(v))})")
            else:
                cells.append(fmt(k, v[0]))
        print(f"| {name} ({len(runs)}) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
