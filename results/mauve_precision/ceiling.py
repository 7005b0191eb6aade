"""MAUVE's reach on the judge: natural text in a generator's place (judge.json's natural_mauve),
per judge seed, beside the bases' and the policies' MAUVE at T = 1 under the same judge seeds
(results/judge_benchmark/ARM/seedS/judge_seeds). Every seed's cycle trained the same judge trunk
(the same train.bin, trunk seed and thread count: equal weights), so the reach depends on the judge
seed alone.

    python3 results/mauve_precision/ceiling.py results/mauve_precision/ceiling results/judge_benchmark

CEILING/train/J/judge.json: a judge run with the corpus's data dir (natural_mauve.train_text:
train.bin windows, the text the generators and the judge trunk learned); CEILING/reward/J/judge.json:
with a data dir whose train.bin is the corpus's reward.bin (text neither trained on; its
natural_mauve.train_text is that text's).
"""
import json
import os
import statistics
import sys


def ms(xs):
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def reach(ceiling, part):
    """{judge seed: natural_mauve} under ceiling/part."""
    d = os.path.join(ceiling, part)
    return {j: json.load(open(os.path.join(d, j, "judge.json")))["natural_mauve"]
            for j in sorted(os.listdir(d)) if os.path.exists(os.path.join(d, j, "judge.json"))}


def at_t1(bench, arm, seed, seeds):
    """{'base' / 'round N': [MAUVE at T = 1 per judge seed in `seeds`]}."""
    out = {}
    for j in seeds:
        for part in ("base", "runs"):
            f = os.path.join(bench, arm, seed, "judge_seeds", j, part, "judge.json")
            for r in (json.load(open(f))["rows"] if os.path.exists(f) else []):
                if r["temperature"] == 1.0:
                    g = r["generator"].rstrip("/").split("/")
                    key = "base" if part == "base" else "round " + g[-3][len("cycle_"):]
                    out.setdefault(key, []).append(r["mauve"])
    return out


def main(ceiling, bench):
    train, reward = reach(ceiling, "train"), reach(ceiling, "reward")
    seeds = sorted(set(train) & set(reward))
    print("| judge seed | other half of val.bin | train.bin | reward.bin |")
    print("|---|---|---|---|")
    for j in seeds:
        print(f"| {j} | {train[j]['other_half']:.3f} | {train[j]['train_text']:.3f} | {reward[j]['train_text']:.3f} |")
    col = lambda d, k: [d[j][k] for j in seeds]
    print(f"| mean ± sd | {ms(col(train, 'other_half'))} | {ms(col(train, 'train_text'))} | {ms(col(reward, 'train_text'))} |")
    print(f"\nThe generators under the same {len(seeds)} judge seeds, MAUVE at T = 1 (mean ± sd):\n")
    print("| arm, seed | base | round 1 | round 2 | round 3 |")
    print("|---|---|---|---|---|")
    for arm in ("raft", "strongraft"):
        for s in sorted(os.listdir(os.path.join(bench, arm))):
            m = at_t1(bench, arm, s, seeds)
            if all(len(m.get(k, [])) == len(seeds) for k in ("base", "round 1", "round 2", "round 3")):
                print(f"| {arm}, {s} | " + " | ".join(ms(m[k]) for k in ("base", "round 1", "round 2", "round 3")) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
