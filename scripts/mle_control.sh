#!/usr/bin/env bash
# The language-modelling control of a judged cycle with the pretraining mix (BENCHMARKS.md, "The
# pretraining mix"): the base generator trained on, by plain next-token loss, for as many steps
# as the cycle's GRPO took language-modelling steps (rounds × max_steps, 16 windows each at the
# GRPO learning rate), then judged at T = 1 by the cycle's own judge (its trunk and seed), so the
# policy can be compared with what the language-modelling term alone does.
#
#   scripts/mle_control.sh BENCH_OUT SEED STEPS [LR]
#   e.g. scripts/mle_control.sh out/jb 1 450 1e-4   (after scripts/judge_benchmark.sh out/jb "1" ptx=...)
#
# Writes BENCH_OUT/seedSEED/mleSTEPS/{ckpt,judge/judge.json}. Environment: NR, THREADS (2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(cd "$1" && pwd); SEED=$2; STEPS=$3; LR=${4:-1e-4}
THREADS=${THREADS:-2}
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
d="$OUT/seed$SEED"; ctl="$d/mle$STEPS"
cycle_judge "$d"
# -L: a generator linked in (SEED_DIR/gen a symlink) is copied, never trained on in place.
rm -rf "$ctl.tmp"; cp -rL "$d/gen" "$ctl.tmp"
iters=$(python3 -c "import json; print(json.load(open('$d/gen/ckpt/train_state.json'))['iter_num'])")
"$NR" train "$ROOT/configs/cpu_quickstart.toml" --init_from=resume --out_dir="$ctl.tmp" \
  --data_dir="$OUT/data" --max_iters=$((iters + STEPS)) --lr_decay_iters=$((iters + STEPS)) \
  --learning_rate="$LR" --min_lr="$LR" --decay_lr=false --warmup_iters=0 --batch_size=16 \
  --always_save_checkpoint=true --eval_interval="$STEPS" --seed="$SEED" --threads="$THREADS" \
  > "$ctl.log" 2>&1
rm -rf "$ctl"; mv "$ctl.tmp" "$ctl"
judge_control "$ctl" "$ctl.log"
