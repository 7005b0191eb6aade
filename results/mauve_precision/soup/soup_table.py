#!/usr/bin/env python3
"""Tables of the weight-interpolation reading (PLAN.md): each generator's paired differences from the base at T 1.0.

    python3 soup_table.py BENCH_OUT ARM "SEEDS" "JUDGE_SEEDS" [MARGIN]

Reads BENCH_OUT/seedS/soup_judge/ARM/J/judge.json (rows: B, R1, R3, candidates, all at T 1.0) and prints, per training
seed and pooled over every (seed, judge seed) pair, mean ± s.e. of ΔC2ST and ΔMAUVE against B in the same judge run.
With MARGIN (0.05 in the plan) it names the candidate the plan's rule chooses from the pooled means. With JUDGE_SEEDS
"own" it prints each candidate judged under its cycle's own judge against the base's best over temperatures in
CYCLE/judge_base/judge.json, beside the rounds' own judgements; CYCLE is BENCH_OUT/seedS/ARM, or CYCLES/ARM/seedS
where CYCLES is set (the repo's copies: BENCH_OUT = results/mauve_precision/soup, CYCLES = results/judge_benchmark).
"""
import json
import os
import statistics as st
import sys


def load(p):
    with open(p) as f:
        return json.load(f)


def name(gen):
    parts = gen.rstrip("/").split("/")
    if "soup" in parts:
        return parts[-1]
    if parts[-1] == "ckpt" and parts[-2] == "grpo":
        return "R" + parts[-3].split("_")[-1]
    return "B"


def mse(xs):
    if len(xs) < 2:
        return f"{xs[0]:+.4f}" if xs else "–"
    return f"{st.mean(xs):+.4f} ± {st.stdev(xs) / len(xs) ** 0.5:.4f}"


def paired(out, arm, seeds, jseeds):
    """{generator: {seed: [(dC2ST, dMAUVE), ...]}} against B in the same judge run."""
    d = {}
    for s in seeds:
        for j in jseeds:
            rows = load(f"{out}/seed{s}/soup_judge/{arm}/{j}/judge.json")["rows"]
            base = rows[0]
            assert name(base["generator"]) == "B", base["generator"]
            for r in rows[1:]:
                d.setdefault(name(r["generator"]), {}).setdefault(s, []).append(
                    (r["c2st"]["auroc"] - base["c2st"]["auroc"], r["mauve"] - base["mauve"])
                )
    return d


def own(out, arm, seeds, cands):
    print("| seed | generator | C2ST | ΔC2ST vs base's lowest | MAUVE | ΔMAUVE vs base's best |")
    print("|---|---|---|---|---|---|")
    for s in seeds:
        cyc = f"{os.environ['CYCLES']}/{arm}/seed{s}" if "CYCLES" in os.environ else f"{out}/seed{s}/{arm}"
        rows = load(f"{cyc}/judge_base/judge.json")["rows"]
        lo = min(r["c2st"]["auroc"] for r in rows)
        hi = max(r["mauve"] for r in rows)
        gens = [(f"R{r}", f"{cyc}/cycle_{r}/judge/judge.json") for r in (1, 3)]
        gens += [(c, f"{out}/seed{s}/soup_judge/{arm}/own/{c}/judge.json") for c in cands]
        for g, p in gens:
            r = load(p)["rows"][0]
            c, m = r["c2st"]["auroc"], r["mauve"]
            print(f"| {s} | {g} | {c:.3f} | {c - lo:+.3f} | {m:.3f} | {m - hi:+.3f} |")


def main():
    out, arm, seeds, jseeds = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
    if jseeds == ["own"]:
        cands = sorted(os.listdir(f"{out}/seed{seeds[0]}/soup_judge/{arm}/own"))
        own(out, arm, seeds, [c for c in cands if not c.endswith(".log") and not c.startswith(".")])
        return
    d = paired(out, arm, seeds, jseeds)
    print(f"judge seeds {', '.join(jseeds)}; differences from the base at T 1.0 in the same judge run, mean ± s.e.")
    print()
    print("| generator | " + " | ".join(f"seed {s}: ΔC2ST / ΔMAUVE" for s in seeds) + " | pooled ΔC2ST | pooled ΔMAUVE |")
    print("|---|" + "---|" * (len(seeds) + 2))
    pooled = {}
    for g, per in d.items():
        cells = [f"{mse([x[0] for x in per[s]])} / {mse([x[1] for x in per[s]])}" for s in seeds]
        allp = [x for s in seeds for x in per[s]]
        pooled[g] = (st.mean(x[0] for x in allp), st.mean(x[1] for x in allp))
        print(f"| {g} | " + " | ".join(cells) + f" | {mse([x[0] for x in allp])} | {mse([x[1] for x in allp])} |")
    if len(sys.argv) > 5:
        margin = float(sys.argv[5])
        ok = [(m, g) for g, (c, m) in pooled.items() if g.startswith("S") and c <= -margin]
        print()
        print(f"chosen: {max(ok)[1]}" if ok else f"chosen: none (no candidate ≥ {margin} below the base's C2ST)")


if __name__ == "__main__":
    main()
