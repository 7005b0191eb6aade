#!/usr/bin/env bash
# The judged-cycle benchmark of BENCHMARKS.md, from the corpus: for every seed, prepare Tiny
# Shakespeare with a reward split (reward.bin: natural text the generator never trains on; val.bin
# stays free for the judge), train the quick-start generator, and run a judged cycle (round 0:
# the base model across temperatures 0.6-1.2; rounds 1-3: reward data -> reward model -> GRPO ->
# the judge on the policy). Then summarise against the base model's temperature frontier.
#
#   scripts/judge_benchmark.sh OUT_DIR "SEEDS" NAME=CYCLE_CONFIG.toml[:extra --key=value ...] ...
#   e.g. scripts/judge_benchmark.sh out/jb "1 2 3" token=configs/cycle_judged.toml
#
# Environment: NR (the nanoreward binary; default: cargo build --release), INPUT (the corpus),
# THREADS (2), BASE_STEPS (0: the cycle starts from the quick-start generator; N: from that
# generator trained on for N more steps of plain language modelling, as scripts/mle_control.sh
# does — a better-trained base whose temperature frontier the cycle must beat; keep one OUT_DIR per
# BASE_STEPS). In the extra keys, @TRUNK stands for a stronger model of natural text trained per
# seed on the train split (configs/strong_trunk.toml, once, in SEED_DIR/trunk) and @DATA for the
# prepared corpus: the cycle with the strongest reward model measured (issue 13, BENCHMARKS.md) is
#   strong=configs/cycle_judged.toml:--reward.trunk=@TRUNK --reward.reference=@TRUNK
# and RAFT inside the cycle, a long first round and two shorter ones (BENCHMARKS.md, 23rd session):
#   "raft=configs/cycle_judged.toml:--grpo.adv_estimator=raft --grpo.reward_granularity=sequence --round_steps=3000,1500,1500"
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; SEEDS=$2; shift 2
INPUT=${INPUT:-$ROOT/../shared/data/tinyshakespeare/input.txt}
THREADS=${THREADS:-2}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
[ -f "$OUT/data/reward.bin" ] || "$NR" prepare --input "$INPUT" --out-dir "$OUT/data" --reward-split 0.3 > /dev/null
runs=()
for s in $SEEDS; do
  d="$OUT/seed$s"; mkdir -p "$d"
  train_generator "$d" "$s"
  for spec in "$@"; do
    name=${spec%%=*}; rest=${spec#*=}; cfg=${rest%%:*}; extra=""
    [ "$rest" != "$cfg" ] && extra=${rest#*:}
    expand_extra "$d" "$s"
    log "seed $s: cycle $name ($cfg $extra)"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    "$NR" cycle "$ROOT/$cfg" --base="$d/gen/ckpt" --data_dir="$OUT/data" --out_dir="$d/$name" \
      --seed="$s" --threads="$THREADS" --reward.lexicon_text="$OUT/data/train.bin" $extra \
      > "$d/$name.log" 2>&1
    log "seed $s: cycle $name done in $(( $(date +%s) - t0 )) s"
    runs+=("$name=$d/$name")
  done
done
python3 "$ROOT/scripts/judge_summary.py" "${runs[@]}" | tee "$OUT/summary.md"
