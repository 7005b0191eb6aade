#!/usr/bin/env python3
"""MAUVE's resolution per k-means setting (PLAN.md): for each `clusters` setting and judge seed,
the base's MAUVE per temperature, the mean bootstrap standard error (interval width / 3.92), the
signal MAUVE(T 1.0) − MAUVE(T 0.7) and signal / standard error; the judge seeds' differences.
Reads clusters/k{K}_s{S}.json (judge.json of each run). python3 clusters.py"""
import json
import os
import statistics as st

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    for k in ["0", "50", "20"]:
        rows = {}
        for s in ["1", "2"]:
            f = os.path.join(HERE, "clusters", f"k{k}_s{s}.json")
            if os.path.exists(f):
                rows[s] = {r["temperature"]: (r["mauve"], r["mauve_ci95"]) for r in json.load(open(f))["rows"]}
        if not rows:
            continue
        print(f"| {k} ({'102' if k == '0' else k} clusters) |", end="")
        snr = []
        for s, r in rows.items():
            se = st.mean((ci[1] - ci[0]) / 3.92 for _, ci in r.values())
            sig = r[1.0][0] - r[0.7][0]
            snr.append(sig / se)
            print(" " + " / ".join(f"{m:.3f}" for _, (m, _) in sorted(r.items())) + f" | {se:.4f} | {sig:.3f} | {sig / se:.1f} |", end="")
        d = [rows["1"][t][0] - rows["2"][t][0] for t in rows["1"]] if len(rows) == 2 else []
        sd = (sum(x * x for x in d) / len(d) / 2) ** 0.5 if d else float("nan")
        print(f" {sd:.4f} | {st.mean(snr):.1f} |")


if __name__ == "__main__":
    print("| clusters | seed 1: MAUVE at T 0.7 … 1.2 | se | signal | s/se | seed 2: MAUVE at T 0.7 … 1.2 | se | signal | s/se | judge-seed sd | mean s/se |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    main()
