#!/usr/bin/env bash
# The weight-interpolation reading of PLAN.md ("weight interpolation of the cycle's policies").
#   NR=nanoreward results/mauve_precision/soup/run.sh BENCH_OUT ARM "SEEDS" "JUDGE_SEEDS" "CANDIDATES"
# e.g. ... /work/jb/out strongraft "1 2 3" "101 102 103" "S1 S2 S3 S4"   (validation)
#      ... /work/jb/out strongraft "1 2 3" "104 105 106 107 108 109" "S2"  (the chosen one)
#      JUDGE_SEEDS "own": each cycle's own judge seed, each generator judged alone (as the cycle judged its rounds)
# Writes BENCH_OUT/seedS/soup/ARM/CANDIDATE (checkpoints) and BENCH_OUT/seedS/soup_judge/ARM/J/judge.json:
# the base B at T 1.0 first, then R1, R3 and the candidates (T 1.0).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(cd "$1" && pwd); ARM=$2; SEEDS=$3; JSEEDS=$4; CANDS=$5
THREADS=${THREADS:-2}
for s in $SEEDS; do
  d=$OUT/seed$s; cyc=$d/$ARM; B=$d/gen/ckpt; R1=$cyc/cycle_1/grpo/ckpt; R3=$cyc/cycle_3/grpo/ckpt
  trunk=$cyc/judge_base/judge_trunk/ckpt
  sd=$d/soup/$ARM; jd=$d/soup_judge/$ARM; mkdir -p "$jd/own"
  mk() { [ -f "$sd/$1/model.safetensors" ] || python3 "$HERE/soup.py" "$2" "$3" "$4" "$sd/$1"; }
  mk S1 "$B" "$R3" 0.5; mk S2 "$R1" "$R3" 0.5; mk S3 "$B" "$R1" 1.5; mk S4 "$B" "$R3" 1.25
  gens="$B,$R1,$R3"; for c in $CANDS; do gens="$gens,$sd/$c"; done
  for j in $JSEEDS; do
    if [ "$j" = own ]; then
      js=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['seed'])" "$cyc/judge_base/judge.json")
      for c in $CANDS; do
        o=$jd/own/$c
        [ -f "$o/judge.json" ] || "$NR" judge --generators="$sd/$c" --temperatures=1.0 --trunk="$trunk" --seed="$js" \
          --data_dir="$OUT/data" --natural="$OUT/data/val.bin" --out_dir="$o" --threads="$THREADS" > "$o.log" 2>&1
      done
    else
      o=$jd/$j
      [ -f "$o/judge.json" ] || "$NR" judge --generators="$gens" --temperatures=1.0 --trunk="$trunk" --seed="$j" \
        --data_dir="$OUT/data" --natural="$OUT/data/val.bin" --out_dir="$o" --threads="$THREADS" > "$o.log" 2>&1
    fi
    echo "[$(date +%T)] seed $s: judge seed $j"
  done
done
