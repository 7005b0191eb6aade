"""The table of a cycle judged again under several judge seeds (scripts/judge_seeds.sh): per
generator, C2ST AUROC and MAUVE (mean ± sd over the judge seeds), word validity and val loss
(means); for every policy and control, its C2ST and MAUVE minus the base's at the base's best
temperature (lowest mean C2ST; highest mean MAUVE, the means over the judge seeds that judged
every base temperature), paired by judge seed (mean ± s.e., and on how
many judge seeds the C2ST difference is negative); for every other generator at T = 1 (the rounds'
policies and the later controls, e.g. a round rerun by scripts/round_arm.sh), the same against the
first control. Best-of-n parts (judge_seeds.sh's BEST_OF: the base at T = 1 best of N by round 1's
reward model) are rows named "best-of-N τ=T", paired against the base's best like a policy.

    [JUDGE_SEEDS="131 132 133"] python3 scripts/judge_seeds.py SEED_DIR/judge_seeds [CONTROL_NAME ...]

With JUDGE_SEEDS set (as judge_seeds.sh is run), only those judge seeds count: the table of that run,
whatever parts earlier judge seeds were judged with; a part (frontier, best-of) that some of them lack
is left out of the table instead of those judge seeds. With SELECT_FROM=JUDGE.json (e.g. the cycle's
own CYCLE/judge_base/judge.json), the base's best temperatures are those of that judgement (lowest
C2ST, highest MAUVE there), held out from the samples they are measured on here: the maximum of
noisy values over temperatures, taken on the same samples, favours the base.
"""
import json
import os
import statistics
import sys


def mean_sd(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def mean_se(xs):
    return statistics.mean(xs), (statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0)


def name(row, bases, controls, part=""):
    """'base T=…' for the base generator (any of `bases`, the generators of the judge seed's base
    part); 'round N' / a control's name at T = 1, with ' T=…' otherwise; 'best-of-N τ=T' for a
    best-of-n part (`part` best_of_N_tauT)."""
    if part.startswith("best_of_"):
        n, tau = part[len("best_of_"):].split("_tau")
        return f"best-of-{n} τ={tau}" + ("" if row["temperature"] == 1.0 else " T=%.1f" % row["temperature"])
    if row["generator"] in bases:
        return "base T=%.1f" % row["temperature"]
    parts = row["generator"].rstrip("/").split("/")
    key = row["generator"]
    if len(parts) >= 3 and parts[-2] == "grpo" and parts[-3].startswith("cycle_"):
        key = "round " + parts[-3][len("cycle_"):]
    elif len(parts) >= 2 and parts[-2] in controls:
        key = parts[-2]
    return key if row["temperature"] == 1.0 else key + " T=%.1f" % row["temperature"]


def load(root, controls):
    """{generator: [row per judge seed]}, judge seeds in sorted order; only seeds whose runs part
    judged every control named (a judge seed from before a control was run would pair its rows
    with other seeds') and, among those, with every part (base, runs, and frontier where any of
    them has one); a generator and temperature judged in two parts counts once."""
    gens = {}
    judged = {}
    only = os.environ.get("JUDGE_SEEDS", "").split()
    for j in os.listdir(root):
        if not os.path.isdir(os.path.join(root, j)) or (only and j not in only):
            continue
        named = [p for p in os.listdir(os.path.join(root, j)) if p.startswith("best_of_")]
        files = {p: os.path.join(root, j, p, "judge.json") for p in ["base", "runs", "frontier"] + named}
        rows = {p: json.load(open(f))["rows"] for p, f in files.items() if os.path.exists(f)}
        if "base" in rows and "runs" in rows and \
                set(controls) <= {name(r, set(), controls) for r in rows["runs"]}:
            judged[j] = rows
    optional = sorted({p for r in judged.values() for p in r if p not in ("base", "runs")})
    if only:
        # The judge seeds named are the table: a part some of them lack is left out, not they.
        optional = [p for p in optional if all(p in r for r in judged.values())]
    parts = ["base", "runs"] + optional
    seeds = sorted(j for j, rows in judged.items() if all(p in rows for p in parts))
    for j in seeds:
        seen = set()
        rows = judged[j]
        bases = {r["generator"] for r in rows["base"]}
        for part in parts:
            for r in rows[part]:
                key = name(r, bases, controls, part)
                if key not in seen:
                    seen.add(key)
                    gens.setdefault(key, []).append(dict(r, judge_seed=j))
    return seeds, gens


def table_order(gens):
    """The base's rows by temperature, then every other generator in the order first met, each
    followed by its rows at other temperatures."""
    stem = lambda k: k.split(" T=")[0]
    first = {}
    for k in gens:
        first.setdefault(stem(k), len(first))
    temp = lambda k: float(k.split(" T=")[1]) if " T=" in k else 1.0
    return sorted(gens, key=lambda k: (not k.startswith("base"), first[stem(k)], temp(k)))


def selected(path, bases):
    """The base's rows named for the temperatures of lowest C2ST and highest MAUVE in the
    judgement at `path` (judge.json)."""
    rows = json.load(open(path))["rows"]
    if not rows:
        sys.exit(f"{path} holds no judged rows")
    picks = [min(rows, key=lambda r: r["c2st"]["auroc"]), max(rows, key=lambda r: r["mauve"])]
    keys = ["base T=%.1f" % r["temperature"] for r in picks]
    for k in keys:
        if k not in bases:
            sys.exit(f"{path} selects {k}, which the judge seeds did not judge: add its temperature to BASE_TEMPERATURES")
    return keys


def paired(rows, ref, field):
    """field(row) − field(ref's row) for every judge seed both were judged under."""
    by_seed = {b["judge_seed"]: b for b in ref}
    return [field(a) - field(by_seed[a["judge_seed"]]) for a in rows if a["judge_seed"] in by_seed]


def main(root, controls):
    seeds, gens = load(root, controls)
    if not seeds:
        sys.exit(f"{root} holds no judge seed with both base/judge.json and runs/judge.json"
                 + (f" that judged {', '.join(controls)}: judge them with scripts/judge_seeds.sh" if controls else ""))
    c2st = lambda r: r["c2st"]["auroc"]
    mauve = lambda r: r["mauve"]
    words = lambda r: r["word_validity"]
    bases = [k for k in gens if k.startswith("base")]
    # The base's best temperatures from means over the judge seeds that judged every base
    # temperature: a mean over more judge seeds is not comparable with one over fewer.
    common = set.intersection(*({r["judge_seed"] for r in gens[k]} for k in bases))
    if not common:
        sys.exit(f"{root}: no judge seed judged the base at every temperature ({', '.join(bases)}): "
                 "set JUDGE_SEEDS to seeds judged alike, or SELECT_FROM")
    over_common = lambda k, f: statistics.mean(f(r) for r in gens[k] if r["judge_seed"] in common)
    best = min(bases, key=lambda k: over_common(k, c2st))
    best_m = max(bases, key=lambda k: over_common(k, mauve))
    how = ""
    if os.environ.get("SELECT_FROM"):
        best, best_m = selected(os.environ["SELECT_FROM"], bases)
        how = f" (selected by {os.environ['SELECT_FROM']}, held out)"
    ctl = controls[0] if controls else None
    print(f"{len(seeds)} judge seeds ({', '.join(seeds)}); the base's best C2ST at {best}, best MAUVE at {best_m}{how}\n")
    print("| generator | C2ST | MAUVE | words | val | − base's best: C2ST (negative) | − base's best: MAUVE"
          + (f" | − {ctl}: C2ST (negative), MAUVE, words |" if ctl else " |"))
    print("|---|---|---|---|---|---|---" + ("|---|" if ctl else "|"))
    for k in table_order(gens):
        rows = gens[k]
        c, m = mean_sd(list(map(c2st, rows))), mean_sd(list(map(mauve, rows)))
        line = (f"| {k} | {c[0]:.4f} ± {c[1]:.4f} | {m[0]:.3f} ± {m[1]:.3f} | "
                f"{statistics.mean(map(words, rows)):.3f} | {statistics.mean(r['val_loss'] for r in rows):.3f} |")
        cells = ["", ""] + ([""] if ctl else [])
        if not k.startswith("base"):
            dc, dm = paired(rows, gens[best], c2st), paired(rows, gens[best_m], mauve)
            none = "no judge seed in common"
            cells[0] = f"{mean_se(dc)[0]:+.4f} ± {mean_se(dc)[1]:.4f} ({sum(x < 0 for x in dc)}/{len(dc)})" if dc else none
            cells[1] = f"{mean_se(dm)[0]:+.3f} ± {mean_se(dm)[1]:.3f}" if dm else none
            if ctl and k != ctl and " T=" not in k:
                cc = paired(rows, gens[ctl], c2st)
                cm, cw = paired(rows, gens[ctl], mauve), paired(rows, gens[ctl], words)
                cells[2] = (f"{mean_se(cc)[0]:+.4f} ± {mean_se(cc)[1]:.4f} ({sum(x < 0 for x in cc)}/{len(cc)}), "
                            f"{statistics.mean(cm):+.3f}, {statistics.mean(cw):+.3f}")
        print(line + " " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
