"""Summarises judged cycles (`nanoreward cycle` with a [judge] section): per run, the base
model's temperature frontier (lowest C2ST AUROC and highest MAUVE over its temperatures, its val
loss and word validity at T=1) against the final policy's; then the mean and spread per group,
and the acceptance checks of BENCHMARKS.md (policy C2ST at least 0.05 below the base's lowest,
MAUVE above the base's best, val loss within +0.05 nats, word validity up).

    python3 scripts/judge_summary.py GROUP=CYCLE_OUT_DIR ...
"""
import collections
import json
import os
import statistics
import sys


def load(d):
    base = json.load(open(os.path.join(d, "judge_base", "judge.json")))
    rounds = json.load(open(os.path.join(d, "cycle_summary.json")))
    rows = base["rows"]
    lo = min(rows, key=lambda r: r["c2st"]["auroc"])
    hi = max(rows, key=lambda r: r["mauve"])
    t1 = min(rows, key=lambda r: abs(r["temperature"] - 1.0))
    last = rounds[-1]
    f = collections.OrderedDict([
        ("base C2ST best", lo["c2st"]["auroc"]), ("at T", lo["temperature"]),
        ("base MAUVE best", hi["mauve"]), ("at T ", hi["temperature"]),
        ("base C2ST T=1", t1["c2st"]["auroc"]), ("base MAUVE T=1", t1["mauve"]),
        ("base val", t1["val_loss"]), ("base words", t1["word_validity"]),
    ])
    for r in rounds:
        f[f"r{r['round']} C2ST"] = r.get("c2st_auroc") or float("nan")
        f[f"r{r['round']} MAUVE"] = r.get("mauve") or float("nan")
        f[f"r{r['round']} RM on policy"] = r.get("rm_auroc_policy") or float("nan")
    # The policy's val loss from the judge's own windows (the base's are the same windows);
    # GRPO's policy_val_loss_end is measured on GRPO's eval windows and does not compare.
    judged = os.path.join(d, f"cycle_{last['round']}", "judge", "judge.json")
    f["policy val"] = (json.load(open(judged))["rows"][0]["val_loss"]
                       if os.path.exists(judged) else float("nan"))
    f["policy words"] = last.get("word_validity") or float("nan")
    f["ΔC2ST vs best"] = f[f"r{last['round']} C2ST"] - f["base C2ST best"]
    f["ΔMAUVE vs best"] = f[f"r{last['round']} MAUVE"] - f["base MAUVE best"]
    f["Δval"] = f["policy val"] - f["base val"]
    f["Δwords"] = f["policy words"] - f["base words"]
    return f


def main(args):
    groups = collections.OrderedDict()
    for a in args:
        name, d = a.split("=", 1)
        groups.setdefault(name, []).append((d, load(d)))
    keys = list(next(iter(groups.values()))[0][1].keys())
    print("| run | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, runs in groups.items():
        for d, f in runs:
            print(f"| {name} ({d}) | " + " | ".join(f"{f[k]:.3f}" for k in keys) + " |")
    print()
    print("| configuration (runs) | " + " | ".join(keys) + " | target met |")
    print("|---" * (len(keys) + 2) + "|")
    for name, runs in groups.items():
        cells = []
        for k in keys:
            v = [f[k] for _, f in runs]
            cells.append(f"{statistics.mean(v):.3f} ± {statistics.stdev(v):.3f}" if len(v) > 1 else f"{v[0]:.3f}")
        met = [f["ΔC2ST vs best"] <= -0.05 and f["ΔMAUVE vs best"] > 0 and f["Δval"] <= 0.05 and f["Δwords"] > 0
               for _, f in runs]
        print(f"| {name} ({len(runs)}) | " + " | ".join(cells) + f" | {sum(met)} of {len(met)} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
