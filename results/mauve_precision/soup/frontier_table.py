#!/usr/bin/env python3
"""The policies against the base's whole temperature frontier under held-out judge seeds (PLAN.md, 2026-12-08).

    python3 frontier_table.py BENCH_OUT "ARMS" "SEEDS" "JUDGE_SEEDS" [MARGIN]

Reads BENCH_OUT/seedS/soup_judge/base_frontier/J/judge.json (the base at T 1.0 first, then 0.6-0.9, 1.1-1.2; written
by base_frontier.sh) and BENCH_OUT/seedS/soup_judge/ARM/J/judge.json (the base at T 1.0, then R1, R3 and candidates,
from run.sh). Checks that the two base rows at T 1.0 are equal (same judge seed, same row seed). Per training seed it
picks T_M, the base temperature with the highest mean MAUVE over the judge seeds, and T_C, the one with the lowest
mean C2ST, then prints each policy's mean ± s.e. of the paired ΔC2ST against B at T_C and ΔMAUVE against B at T_M,
and whether it meets (ΔC2ST ≤ −MARGIN, 0.05 by default, and ΔMAUVE > 0).
"""
import statistics as st
import sys

from soup_table import load, mse, name


def frontier(out, s, jseeds):
    """{judge seed: {temperature: (c2st, mauve)}} of the base."""
    f = {}
    for j in jseeds:
        rows = load(f"{out}/seed{s}/soup_judge/base_frontier/{j}/judge.json")["rows"]
        f[j] = {round(r["temperature"], 2): (r["c2st"]["auroc"], r["mauve"]) for r in rows}
    return f


def check_t1(f, rows, arm, s, j):
    """Exits unless run.sh's base row (rows[0]) equals the frontier's T 1.0 row."""
    base = rows[0]
    assert name(base["generator"]) == "B", base["generator"]
    got = (base["c2st"]["auroc"], base["mauve"])
    if got != f[j][1.0]:
        sys.exit(f"seed {s}, judge seed {j}: the base at T 1.0 reads {f[j][1.0]} here but {got} in {arm}'s run")


def best_temperatures(f):
    temps = sorted(next(iter(f.values())))
    mean = {t: (st.mean(f[j][t][0] for j in f), st.mean(f[j][t][1] for j in f)) for t in temps}
    return min(temps, key=lambda t: mean[t][0]), max(temps, key=lambda t: mean[t][1]), mean


def main():
    out, arms, seeds, jseeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split()
    margin = float(sys.argv[5]) if len(sys.argv) > 5 else 0.05
    fronts = {s: frontier(out, s, jseeds) for s in seeds}
    picks = {s: best_temperatures(fronts[s]) for s in seeds}
    print(f"judge seeds {', '.join(jseeds)}; the base's mean C2ST / MAUVE by temperature")
    print()
    print("| T | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("|---|" + "---|" * len(seeds))
    for t in picks[seeds[0]][2]:
        print(f"| {t:g} | " + " | ".join("{:.3f} / {:.3f}".format(*picks[s][2][t]) for s in seeds) + " |")
    print()
    print("paired differences from the base at T_C (lowest mean C2ST) and T_M (highest mean MAUVE), mean ± s.e.")
    print()
    print("| seed | T_C / T_M | arm | policy | ΔC2ST vs B(T_C) | ΔMAUVE vs B(T_M) | met |")
    print("|---|---|---|---|---|---|---|")
    for s in seeds:
        f = fronts[s]
        tc, tm, _ = picks[s]
        for arm in arms:
            runs = {}
            for j in jseeds:
                rows = load(f"{out}/seed{s}/soup_judge/{arm}/{j}/judge.json")["rows"]
                check_t1(f, rows, arm, s, j)
                for r in rows[1:]:
                    runs.setdefault(name(r["generator"]), []).append(
                        (r["c2st"]["auroc"] - f[j][tc][0], r["mauve"] - f[j][tm][1])
                    )
            for g in ("R3", "S2"):
                dc, dm = [x[0] for x in runs[g]], [x[1] for x in runs[g]]
                met = st.mean(dc) <= -margin and st.mean(dm) > 0
                print(f"| {s} | {tc:g} / {tm:g} | {arm} | {g} | {mse(dc)} | {mse(dm)} | {'yes' if met else 'no'} |")


if __name__ == "__main__":
    main()
