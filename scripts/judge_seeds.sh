#!/usr/bin/env bash
# One judgement moves C2ST by about ±0.01: this judges a seed's cycle again under more judge seeds
# (the cycle's own judge trunk, other seeds for its windows, samples and detector), the base at
# temperatures around its best, every round's policy and any controls at T = 1, and prints the
# table of BENCHMARKS.md (mean ± sd per generator; differences paired by judge seed against the
# base's best temperature and against the first control).
#
#   scripts/judge_seeds.sh BENCH_OUT SEED CYCLE_NAME [CONTROL ...]
#   e.g. scripts/judge_seeds.sh out/jb 1 recipe mle450   (after judge_benchmark.sh and mle_control.sh)
#
# Writes BENCH_OUT/seedSEED/judge_seeds/J/{base,runs}/judge.json. Environment: NR, THREADS (2),
# JUDGE_SEEDS ("101 102 103 104 105"; when set, the table is of those judge seeds only),
# BASE_TEMPERATURES (0.8,0.9,1.0,1.1), FRONTIER_TEMPERATURES (unset: none; e.g. 1.1,1.2 judges the
# base and the final round's policy at those temperatures too, into J/frontier/judge.json: the
# policy's own temperature frontier beside the base's; FRONTIER_ROUNDS="2 3" judges those rounds'
# policies there instead of the base and the final round), BEST_OF (unset: none; e.g. "16:0 16:1"
# judges the base at T = 1 best of 16 by round 1's reward model — the detector of the base's own
# text — keeping the most natural (τ = 0) or importance-resampled at τ = 1, into
# J/best_of_16_tau0/judge.json: whether the reward model carries what the judge sees; "16:cal"
# fits τ instead on the cycle's held-out reward text, CYCLE/heldout_val.bin, which the reward
# model never trained on — only for cycles whose reward text is reward.bin, so that it is not the
# judge's val.bin). SELECT_FROM=CYCLE/judge_base/judge.json: the base's best temperatures taken
# from the cycle's own judgement instead of from these judge seeds' means (scripts/judge_seeds.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(cd "$1" && pwd); SEED=$2; NAME=$3; shift 3
THREADS=${THREADS:-2}
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
d="$OUT/seed$SEED"; cyc="$d/$NAME"
[ -f "$cyc/cycle_summary.json" ] || { echo "$cyc holds no finished cycle: run scripts/judge_benchmark.sh first" >&2; exit 1; }
trunk="$cyc/judge_base/judge_trunk/ckpt"
gens=$(ls -d "$cyc"/cycle_*/grpo/ckpt | sort -V | paste -sd,); final=${gens##*,}
for c in "$@"; do
  [ -f "$d/$c/ckpt/config.json" ] || { echo "missing control $d/$c: run it first" >&2; exit 1; }
  gens="$gens,$d/$c/ckpt"
done
mkdir -p "$d/judge_seeds"
for j in ${JUDGE_SEEDS:-101 102 103 104 105}; do
  o="$d/judge_seeds/$j"
  for part in base runs ${FRONTIER_TEMPERATURES:+frontier} $(for b in ${BEST_OF:-}; do echo "best_of_${b%%:*}_tau${b##*:}"; done); do
    [ -f "$o/$part/judge.json" ] && continue
    extra=()
    case $part in
      base) g="$d/gen/ckpt"; t=${BASE_TEMPERATURES:-0.8,0.9,1.0,1.1} ;;
      runs) g=$gens; t=1.0 ;;
      frontier) g="$d/gen/ckpt,$final"; t=$FRONTIER_TEMPERATURES
        if [ -n "${FRONTIER_ROUNDS:-}" ]; then
          g=$(for r in $FRONTIER_ROUNDS; do
            [ -f "$cyc/cycle_$r/grpo/ckpt/config.json" ] || { echo "FRONTIER_ROUNDS: $cyc has no round $r policy" >&2; exit 1; }
            echo "$cyc/cycle_$r/grpo/ckpt"
          done | paste -sd,)
        fi ;;
      best_of_*) g="$d/gen/ckpt"; t=1.0; n=${part#best_of_}; tau=${n##*_tau}
        extra=(--best_of="${n%%_tau*}" --best_of_model="$cyc/cycle_1/reward/ckpt")
        if [ "$tau" = cal ]; then
          [ -f "$OUT/data/reward.bin" ] || { echo "BEST_OF N:cal needs a cycle on reward.bin (prepare --reward-split): the held-out text must not be the judge's" >&2; exit 1; }
          extra+=(--best_of_calibration="$cyc/heldout_val.bin")
        else
          extra+=(--best_of_temperature="$tau")
        fi ;;
    esac
    run_judge "$g" "$t" "$trunk" "$j" "$o/$part" "${extra[@]}" > "$o.$part.log" 2>&1
  done
  log "seed $SEED: judged under judge seed $j"
done
python3 "$ROOT/scripts/judge_seeds.py" "$d/judge_seeds" "$@"
