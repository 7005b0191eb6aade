#!/usr/bin/env bash
# The language-modelling control of a judged cycle with the pretraining mix (BENCHMARKS.md, "The
# pretraining mix"): the base generator trained on, by plain next-token loss, for as many steps
# as the cycle's GRPO took language-modelling steps (rounds × max_steps, 16 windows each at the
# GRPO learning rate), then judged at T = 1 by the cycle's own judge (its trunk and seed), so the
# policy can be compared with what the language-modelling term alone does.
#
#   scripts/mle_control.sh BENCH_OUT SEED STEPS [LR]
#   e.g. scripts/mle_control.sh out/jb 1 450 1e-4   (after scripts/judge_benchmark.sh out/jb "1" ptx=...)
#        FROM=recipe/cycle_2/grpo scripts/mle_control.sh out/jb 1 600   (beside scripts/round_arm.sh)
#
# Writes BENCH_OUT/seedSEED/mleSTEPS/{ckpt,judge/judge.json}. Environment: NR, THREADS (2), FROM
# (the model under BENCH_OUT/seedSEED to start from: gen, the base, unless set; a round's policy,
# e.g. recipe/cycle_2/grpo — the final round's start, for a round rerun by round_arm.sh — starts
# from its weights with a fresh optimizer as GRPO's: 10 warm-up steps, no weight decay).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(cd "$1" && pwd); SEED=$2; STEPS=$3; LR=${4:-1e-4}
THREADS=${THREADS:-2}; FROM=${FROM:-gen}
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
d="$OUT/seed$SEED"; ctl="$d/mle$STEPS"
[ -f "$d/$FROM/ckpt/config.json" ] || { echo "$d/$FROM holds no checkpoint" >&2; exit 1; }
cycle_judge "$d"
if [ "$FROM" = gen ]; then
  train_lm_on "$d/gen" "$ctl" "$STEPS" "$LR" "$SEED" "$ctl.log"
else
  train_lm_from_policy "$d/$FROM" "$ctl" "$STEPS" "$LR" "$SEED" "$ctl.log"
fi
judge_control "$ctl" "$ctl.log"
