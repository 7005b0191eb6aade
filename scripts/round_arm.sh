#!/usr/bin/env bash
# A judged cycle's round rerun with one thing changed (an arm of BENCHMARKS.md's tables of what
# each part contributes): the round's GRPO config and seed as its checkpoint recorded them (the
# same start, reward models, data and seed), with KEY=VALUE overrides, e.g. four times the steps
# or no pretraining mix. Judge it beside the cycle and its controls with scripts/judge_seeds.sh.
#
#   scripts/round_arm.sh BENCH_OUT SEED CYCLE_NAME ARM [KEY=VALUE ...]
#   e.g. scripts/round_arm.sh out/jb 1 recipe rec600 max_steps=600
#        FROM=recipe/cycle_2/grpo scripts/mle_control.sh out/jb 1 600   (its language-modelling control)
#        JUDGE_SEEDS="111 112 113" scripts/judge_seeds.sh out/jb 1 recipe mle600 rec600
#
# Writes BENCH_OUT/seedSEED/ARM (its checkpoint in ckpt/, its config in arm.toml; through ARM.tmp,
# so a stopped run leaves nothing there) and ARM.log. Environment: NR, THREADS (2), ROUND (the
# cycle's final round unless set).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 4 ] || { sed -n '2,14p' "$0" >&2; exit 1; }
OUT=$(cd "$1" && pwd); SEED=$2; NAME=$3; ARM=$4; shift 4
THREADS=${THREADS:-2}
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
d="$OUT/seed$SEED"; cyc="$d/$NAME"
round=${ROUND:-$(ls -d "$cyc"/cycle_*/grpo 2>/dev/null | sed 's#.*/cycle_\([0-9]*\)/grpo#\1#' | sort -n | tail -1)}
src="$cyc/cycle_$round/grpo/ckpt"
[ -f "$src/train_state.json" ] || { echo "$src holds no GRPO checkpoint: run scripts/judge_benchmark.sh first" >&2; exit 1; }
if [ -f "$d/$ARM/ckpt/train_state.json" ]; then
  echo "$d/$ARM is finished (remove it to rerun)"; exit 0
fi
rm -rf "$d/$ARM.tmp"; mkdir -p "$d/$ARM.tmp"
python3 "$ROOT/scripts/round_config.py" "$src/train_state.json" out_dir="$d/$ARM.tmp" threads="$THREADS" "$@" \
  > "$d/$ARM.tmp/arm.toml"
log "seed $SEED: $NAME's round $round rerun as $ARM ($*)"
"$NR" grpo "$d/$ARM.tmp/arm.toml" > "$d/$ARM.log" 2>&1
rm -rf "$d/$ARM"; mv "$d/$ARM.tmp" "$d/$ARM"
log "seed $SEED: $ARM done"
