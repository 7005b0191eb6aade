#!/usr/bin/env bash
# On-policy distillation of a judged cycle's base generator from the seed's stronger model of
# natural text (configs/distill.toml: the forward KL to the teacher on the policy's samples plus
# the pretraining mix, as many steps as the cycle's GRPO), judged at T = 1 by the cycle's own
# judge (its trunk and seed): the distillation arm of BENCHMARKS.md, beside scripts/mle_control.sh.
#
#   scripts/distill_control.sh BENCH_OUT SEED STEPS [--key=value ...]
#   e.g. scripts/distill_control.sh out/jb 1 450   (after scripts/judge_benchmark.sh out/jb "1" \
#        token=configs/cycle_judged.toml:--reward.trunk=@TRUNK, which trains SEED_DIR/trunk)
#
# Writes BENCH_OUT/seedSEED/distillSTEPS/{ckpt,judge/judge.json}. The reward model of the cycle's
# round 1 is only scored (reward_coef = 0). Environment: NR, THREADS (2), NAME (distillSTEPS).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(cd "$1" && pwd); SEED=$2; STEPS=$3; shift 3
THREADS=${THREADS:-2}
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
d="$OUT/seed$SEED"; run="$d/${NAME:-distill$STEPS}"
cycle_judge "$d"
cycle_dir=$(dirname "$JUDGE_DIR")
for need in "$d/gen/ckpt" "$d/trunk/ckpt" "$cycle_dir/cycle_1/reward/ckpt"; do
  [ -e "$need" ] || { echo "missing $need: run the cycle (and its stronger trunk) first" >&2; exit 1; }
done
rm -rf "$run.tmp"
"$NR" grpo "$ROOT/configs/distill.toml" --init_from="$d/gen/ckpt" --teacher="$d/trunk/ckpt" \
  --reward_model="$cycle_dir/cycle_1/reward/ckpt" --data_dir="$OUT/data" --out_dir="$run.tmp" \
  --max_steps="$STEPS" --seed="$SEED" --threads="$THREADS" "$@" > "$run.log" 2>&1
rm -rf "$run"; mv "$run.tmp" "$run"
judge_control "$run" "$run.log"
