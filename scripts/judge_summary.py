"""Summarises judged cycles (`nanoreward cycle` with a [judge] section): per run, the base
model's temperature frontier (lowest C2ST AUROC and highest MAUVE over its temperatures, its val
loss and word validity at T=1) against the final policy's; then the mean and spread per group,
and the acceptance checks of BENCHMARKS.md (policy C2ST at least 0.05 below the base's lowest,
MAUVE above the base's best, val loss within +0.05 nats, word validity up). Cycles judged with
`[judge] best_of = N` add each round's best-of-N C2ST AUROC and MAUVE, and round 1's (the base
sampled best of N by round 1's reward model) against the base's frontier; a column a run lacks
reads nan. Cycles run with `[judge] select_seeds` (out_dir/selection.json) add the kept round
(chosen on the validation judge seeds) measured by the cycle's own judgement, which the choice
never saw, against the same frontier, and how many runs' kept rounds meet the targets ("kept is
mix" is 1 where the selection kept the interpolated policy, whose figures are then the kept ones;
its "kept round" reads nan). Cycles
run with `interpolate_round` (out_dir/interpolated) add the interpolated policy ("mix") by the
cycle's own judgement against the same frontier, and how many runs' mixes meet the targets.

    python3 scripts/judge_summary.py GROUP=CYCLE_OUT_DIR ...
"""
import collections
import json
import math
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
    for r in rounds:
        if r.get("best_of_c2st_auroc") is not None:
            f[f"r{r['round']} best-of C2ST"] = r["best_of_c2st_auroc"]
            f[f"r{r['round']} best-of MAUVE"] = r.get("best_of_mauve") or float("nan")
    interpolated(d, f)
    kept(d, rounds, f)
    if rounds[0].get("best_of_c2st_auroc") is not None:
        f["r1 best-of ΔC2ST vs best"] = f["r1 best-of C2ST"] - f["base C2ST best"]
        f["r1 best-of ΔMAUVE vs best"] = f["r1 best-of MAUVE"] - f["base MAUVE best"]
    return f


def kept(d, rounds, f):
    """The kept round of a cycle with a selection (selection.json) against the base's frontier."""
    path = os.path.join(d, "selection.json")
    if not os.path.exists(path):
        return
    k = json.load(open(path))["selected"]
    if k == "interpolated":
        # The interpolated policy was kept: its figures (the "mix" columns) are the kept ones.
        f["kept round"] = float("nan")
        f["kept is mix"] = 1.0
        for key in ("ΔC2ST vs best", "ΔMAUVE vs best", "Δval", "Δwords"):
            f["kept " + key] = f.get("mix " + key, float("nan"))
        return
    f["kept round"] = k
    f["kept is mix"] = 0.0
    f["kept ΔC2ST vs best"] = f[f"r{k} C2ST"] - f["base C2ST best"]
    f["kept ΔMAUVE vs best"] = f[f"r{k} MAUVE"] - f["base MAUVE best"]
    judged = os.path.join(d, f"cycle_{k}", "judge", "judge.json")
    val = json.load(open(judged))["rows"][0]["val_loss"] if os.path.exists(judged) else float("nan")
    f["kept Δval"] = val - f["base val"]
    f["kept Δwords"] = (rounds[k - 1].get("word_validity") or float("nan")) - f["base words"]


def interpolated(d, f):
    """The interpolated policy of a cycle with `interpolate_round` against the base's frontier."""
    path = os.path.join(d, "interpolated", "judge", "judge.json")
    if not os.path.exists(path):
        return
    row = json.load(open(path))["rows"][0]
    f["mix C2ST"] = row["c2st"]["auroc"]
    f["mix MAUVE"] = row["mauve"]
    f["mix ΔC2ST vs best"] = f["mix C2ST"] - f["base C2ST best"]
    f["mix ΔMAUVE vs best"] = f["mix MAUVE"] - f["base MAUVE best"]
    f["mix Δval"] = row["val_loss"] - f["base val"]
    f["mix Δwords"] = row["word_validity"] - f["base words"]


def meets(f, prefix=""):
    """Whether a run's (or its kept round's) figures meet every acceptance target."""
    return (f[prefix + "ΔC2ST vs best"] <= -0.05 and f[prefix + "ΔMAUVE vs best"] > 0
            and f[prefix + "Δval"] <= 0.05 and f[prefix + "Δwords"] > 0)


def spread(v):
    """Mean ± sample sd of the runs that have the figure (how many, when some lack it)."""
    have = [x for x in v if not math.isnan(x)]
    cell = ("nan" if not have else f"{have[0]:.3f}" if len(have) == 1
            else f"{statistics.mean(have):.3f} ± {statistics.stdev(have):.3f}")
    return cell if len(have) in (0, len(v)) else f"{cell} ({len(have)} of {len(v)} runs)"


def main(args):
    groups = collections.OrderedDict()
    for a in args:
        name, d = a.split("=", 1)
        groups.setdefault(name, []).append((d, load(d)))
    keys = list(dict.fromkeys(k for runs in groups.values() for _, f in runs for k in f))
    for runs in groups.values():
        for _, f in runs:
            for k in keys:
                f.setdefault(k, float("nan"))
    print("| run | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, runs in groups.items():
        for d, f in runs:
            print(f"| {name} ({d}) | " + " | ".join(f"{f[k]:.3f}" for k in keys) + " |")
    print()
    selected = "kept is mix" in keys
    mixed = "mix C2ST" in keys
    print("| configuration (runs) | " + " | ".join(keys) + " | target met |"
          + (" kept round: target met |" if selected else "")
          + (" interpolated: target met |" if mixed else ""))
    print("|---" * (len(keys) + 2 + selected + mixed) + "|")
    for name, runs in groups.items():
        cells = []
        for k in keys:
            cells.append(spread([f[k] for _, f in runs]))
        met = [meets(f) for _, f in runs]
        line = f"| {name} ({len(runs)}) | " + " | ".join(cells) + f" | {sum(met)} of {len(met)} |"
        if selected:
            with_sel = [f for _, f in runs if not math.isnan(f["kept ΔC2ST vs best"])]
            line += f" {sum(meets(f, 'kept ') for f in with_sel)} of {len(with_sel)} |"
        if mixed:
            with_mix = [f for _, f in runs if not math.isnan(f["mix C2ST"])]
            line += f" {sum(meets(f, 'mix ') for f in with_mix)} of {len(with_mix)} |"
        print(line)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
