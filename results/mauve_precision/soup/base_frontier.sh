#!/usr/bin/env bash
# The base's whole temperature frontier under the held-out judge seeds (PLAN.md, 2026-12-08).
#   NR=nanoreward results/mauve_precision/soup/base_frontier.sh BENCH_OUT ARM "SEEDS" "JUDGE_SEEDS"
# Judges BENCH_OUT/seedS/gen/ckpt at T 1.0 first (the same row seed as run.sh's base row, so that row must come out
# equal to run.sh's), then 0.6-0.9 and 1.1-1.2, with ARM's judge trunk, into BENCH_OUT/seedS/soup_judge/base_frontier/J.
set -euo pipefail
OUT=$(cd "$1" && pwd); ARM=$2; SEEDS=$3; JSEEDS=$4
THREADS=${THREADS:-2}
for s in $SEEDS; do
  d=$OUT/seed$s; trunk=$d/$ARM/judge_base/judge_trunk/ckpt; jd=$d/soup_judge/base_frontier
  mkdir -p "$jd"
  for j in $JSEEDS; do
    o=$jd/$j
    [ -f "$o/judge.json" ] || "$NR" judge --generators="$d/gen/ckpt" --temperatures=1.0,0.6,0.7,0.8,0.9,1.1,1.2 \
      --trunk="$trunk" --seed="$j" --data_dir="$OUT/data" --natural="$OUT/data/val.bin" --out_dir="$o" \
      --threads="$THREADS" > "$o.log" 2>&1
    echo "[$(date +%T)] seed $s: base frontier under judge seed $j"
  done
done
