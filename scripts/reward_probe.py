"""What a reward model calls natural, off the data it was trained on: its mean P(natural) (± s.e.)
on natural windows of the corpus's last tenth (nanoGPT's val split), on a generator's samples at
several temperatures, on those natural windows with their characters shuffled, and on strings
of characters drawn uniformly from the corpus's alphabet. A detector trained only on natural
text against one generator's samples can read "unlike that generator" as "natural"; GRPO
against it then finds gibberish (BENCHMARKS.md, issue 14, nineteenth session).

    python3 scripts/reward_probe.py NANOREWARD CORPUS.txt GENERATOR_CKPT REWARD_CKPT [REWARD_CKPT ...]

Environment: PROBE_N (windows per group, 100), PROBE_TEMPERATURES (0.7,1.0,1.5,2.0), PROBE_SEED (7),
PROBE_POLICIES (comma-separated generator checkpoints, e.g. GRPO policies: a column of each one's
samples at T = 1, named by its run folder: does each reward model catch the text that fooled another?),
PROBE_JSON (a file: every window's P(natural), by reward model and group, also written there).
Character-level corpora only (the strings are built from characters).
"""
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile

SEP = "---------------"


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout


def samples(nr, ckpt, n, width, t, top_k, seed):
    out = run([nr, "sample", f"--checkpoint={ckpt}", f"--num-samples={n}", f"--max-new-tokens={width}",
               f"--temperature={t}", f"--top-k={top_k}", f"--seed={seed}"])
    return [s.strip("\n") for s in out.split(SEP) if s.strip("\n")][:n]


def run_names(ckpts):
    """Each checkpoint's column name: the folder it belongs to (`…/negnoptx600/ckpt` → negnoptx600),
    with as many parent folders as set it apart from the others (`cycle_2/grpo`, `cycle_3/grpo`)."""
    parts = [[p for p in os.path.normpath(c).split(os.sep) if p not in ("ckpt", "")] or [c] for c in ckpts]
    suffix = lambda p, d: "/".join(p[-d:])
    names = []
    for i, p in enumerate(parts):
        others = [q for j, q in enumerate(parts) if j != i]
        d = next((d for d in range(1, len(p) + 1) if all(suffix(q, d) != suffix(p, d) for q in others)), None)
        if d is None:
            sys.exit(f"PROBE_POLICIES names {ckpts[i]} twice")
        names.append(suffix(p, d))
    return names


def groups(nr, corpus, generator, n, temps, seed, policies=(), width=64):
    rng = random.Random(seed)
    text = open(corpus, encoding="utf-8").read()
    val = text[int(len(text) * 0.9):]
    alphabet = sorted(set(text))
    natural = [val[i:i + width] for i in rng.sample(range(len(val) - width), n)]
    out = {"natural": natural}
    for t in temps:
        out[f"T={t}"] = samples(nr, generator, n, width, t, len(alphabet), seed)
    for name, p in zip(run_names(policies), policies):
        if name in ("natural", "shuffled", "uniform") or name.startswith("T="):
            sys.exit(f"PROBE_POLICIES: {p}'s column would be named {name}, as one of the probe's own groups")
        out[name] = samples(nr, p, n, width, 1.0, len(alphabet), seed)
    out["shuffled"] = ["".join(rng.sample(w, len(w))) for w in natural]
    out["uniform"] = ["".join(rng.choice(alphabet) for _ in range(width)) for _ in range(n)]
    return out


def write_texts(texts, folder):
    """Each text in a file of its own under `folder` (`score` reads one text per file); the paths."""
    os.makedirs(folder)
    paths = [os.path.join(folder, f"{i:05d}.txt") for i in range(len(texts))]
    for p, t in zip(paths, texts):
        with open(p, "w", encoding="utf-8") as f:
            f.write(t)
    return paths


def score(nr, ckpt, paths):
    out = run([nr, "score", f"--checkpoint={ckpt}", "--json", *paths])
    return [json.loads(line)["mean_p_natural"] for line in out.splitlines() if line.startswith("{")]


def main(nr, corpus, generator, rms):
    n = int(os.environ.get("PROBE_N", "100"))
    temps = os.environ.get("PROBE_TEMPERATURES", "0.7,1.0,1.5,2.0").split(",")
    policies = [p for p in os.environ.get("PROBE_POLICIES", "").split(",") if p]
    g = groups(nr, corpus, generator, n, temps, int(os.environ.get("PROBE_SEED", "7")), policies)
    print(f"mean P(natural) ± s.e. over {n} windows per column; samples from {generator}\n")
    print("| reward model | " + " | ".join(("base " + k) if k.startswith("T=") else k for k in g) + " |")
    print("|---" * (len(g) + 1) + "|")
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = [write_texts(texts, os.path.join(tmp, str(i))) for i, texts in enumerate(g.values())]
        for rm in rms:
            scores[rm] = {name: score(nr, rm, paths) for name, paths in zip(g, files)}
            cells = [f"{statistics.mean(p):.3f} ± {statistics.stdev(p) / len(p) ** 0.5:.3f}"
                     for p in scores[rm].values()]
            print(f"| {rm} | " + " | ".join(cells) + " |")
    if os.environ.get("PROBE_JSON"):
        with open(os.environ["PROBE_JSON"] + ".tmp", "w", encoding="utf-8") as f:
            json.dump(scores, f)
        os.replace(os.environ["PROBE_JSON"] + ".tmp", os.environ["PROBE_JSON"])


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
