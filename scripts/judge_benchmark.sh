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
# THREADS (2: each seed's threads), JOBS (1: seeds one after another; N: N seeds side by side, as
# JOBS=3 THREADS=1 on 2 cores; a failed seed is named and the others go on), BASE_STEPS (0: the
# cycle starts from the quick-start generator; N: from that generator trained on for N more steps
# of plain language modelling, as scripts/mle_control.sh does — a better-trained base whose
# temperature frontier the cycle must beat; keep one OUT_DIR per BASE_STEPS), RESULTS (a folder,
# e.g. results/judge_benchmark in the repo: each finished seed's judged figures — the judge.json
# files and the cycle's summaries, kilobytes — are copied to RESULTS/NAME/seedS with the command
# and commit that made them, and the summary covers every seed found there, so that seeds run on
# different machines or days, one command each, make one table). In the extra keys,
# @TRUNK stands for a stronger model of natural text trained per seed on the train split
# (configs/strong_trunk.toml, once, in SEED_DIR/trunk) and @DATA for the prepared corpus: the
# cycle with the strongest reward model measured (issue 13, BENCHMARKS.md) is
#   strong=configs/cycle_judged.toml:--reward.trunk=@TRUNK --reward.reference=@TRUNK
# and RAFT inside the cycle, a long first round and two shorter ones (BENCHMARKS.md, 23rd session):
#   "raft=configs/cycle_judged.toml:--grpo.adv_estimator=raft --grpo.reward_granularity=sequence --round_steps=3000,1500,1500"
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; SEEDS=$2; shift 2
INPUT=${INPUT:-$ROOT/../shared/data/tinyshakespeare/input.txt}
THREADS=${THREADS:-2}
JOBS=${JOBS:-1}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
if [ -n "${RESULTS:-}" ]; then mkdir -p "$RESULTS"; RESULTS=$(cd "$RESULTS" && pwd); fi
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
[ -f "$OUT/data/reward.bin" ] || "$NR" prepare --input "$INPUT" --out-dir "$OUT/data" --reward-split 0.3 > /dev/null
# run_seed SEED: the seed's generator, then each spec's cycle, one after another.
run_seed() {
  local s=$1 d="$OUT/seed$1" spec name rest cfg extra t0
  mkdir -p "$d"
  train_generator "$d" "$s"
  for spec in "${SPECS[@]}"; do
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
    [ -z "${RESULTS:-}" ] || keep_results "$d/$name" "$RESULTS/$name/seed$s" "$s" "$spec"
  done
}
# keep_results RUN_DIR DEST SEED SPEC: RUN_DIR's judged figures copied to DEST (through DEST.tmp),
# with provenance.txt: the commit, the command's settings, the CPU and the seed's lines of the log.
keep_results() {
  local f
  rm -rf "$2.tmp"; mkdir -p "$2.tmp"
  (cd "$1" && find . \( -name judge.json -o -name cycle_summary.json -o -name selection.json \
    -o -path './cycle_*/summary.json' \) \
    -print) | while read -r f; do mkdir -p "$2.tmp/$(dirname "$f")"; cp "$1/$f" "$2.tmp/$f"; done
  {
    echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "command: THREADS=$THREADS BASE_STEPS=${BASE_STEPS:-0} scripts/judge_benchmark.sh OUT \"$3\" \"$4\""
    echo "binary: $("$NR" --version 2>/dev/null || echo "$NR")"
    # Another CPU may round differently (BENCHMARKS.md, thirty-fourth session): say which one ran it.
    echo "cpu: $(cpu_line)"
    grep -E "seed $3:" "$OUT/benchmark.log" || true
  } > "$2.tmp/provenance.txt"
  rm -rf "$2"; mv "$2.tmp" "$2"
}
# cpu_line: the CPU's model, its core count and its widest vector extension (Linux; "unknown"
# elsewhere).
cpu_line() {
  local model simd
  model=$(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/^[^:]*: *//')
  simd=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -o -w -E 'avx512f|avx2|neon' | sort -u | tr '\n' ' ')
  echo "${model:-unknown}, $(nproc 2>/dev/null || echo '?') cores, ${simd:-no avx2/avx512f}"
}
SPECS=("$@")
if [ "$JOBS" -gt 1 ] && [[ "${SPECS[*]}" == *@TRUNKS* ]]; then
  echo "@TRUNKS trains every seed's stronger model from each seed's run: use JOBS=1" >&2
  exit 1
fi
# Seeds side by side, JOBS at a time (each on THREADS threads); a failed seed is named at the end.
pids=(); seeds=(); failed=()
for s in $SEEDS; do
  if [ "$JOBS" -le 1 ]; then
    run_seed "$s"
    continue
  fi
  if [ "${#pids[@]}" -ge "$JOBS" ]; then
    wait "${pids[0]}" || failed+=("${seeds[0]}")
    pids=("${pids[@]:1}"); seeds=("${seeds[@]:1}")
  fi
  run_seed "$s" & pids+=($!); seeds+=("$s")
done
for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${seeds[$i]}"); done
if [ "${#failed[@]}" -gt 0 ]; then
  log "seeds ${failed[*]} failed (their logs in $OUT/seedS/); rerun the same command to resume them"
  exit 1
fi
runs=()
if [ -n "${RESULTS:-}" ]; then
  # Every seed kept in RESULTS for these specs, this command's and earlier ones'.
  for spec in "${SPECS[@]}"; do
    for d in "$RESULTS/${spec%%=*}"/seed*/; do [ -d "$d" ] && runs+=("${spec%%=*}=${d%/}"); done
  done
else
  for s in $SEEDS; do
    for spec in "${SPECS[@]}"; do runs+=("${spec%%=*}=$OUT/seed$s/${spec%%=*}"); done
  done
fi
python3 "$ROOT/scripts/judge_summary.py" "${runs[@]}" | tee "$OUT/summary.md"
