# Shared by scripts/reward_benchmark.sh, scripts/judge_benchmark.sh and the controls beside a judged
# cycle, scripts/mle_control.sh and scripts/distill_control.sh (sourced after ROOT, OUT and THREADS
# are set): the nanoreward binary, the log, the per-seed models, and the cycle's judge.

# NR: the nanoreward binary (built with cargo unless NR is set).
if [ -z "${NR:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  NR="${CARGO_TARGET_DIR:-$ROOT/target}/release/nanoreward"
fi

# log MESSAGE: a timestamped line on stdout and in OUT/benchmark.log.
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/benchmark.log"; }

# finished MODEL_DIR LOG: whether the model there is finished — LOG records a finished run
# ("done: ..."), or MODEL_DIR holds a checkpoint with no LOG beside it (a model linked in).
finished() {
  grep -q '^done: ' "$2" 2>/dev/null || { [ -f "$1/ckpt/config.json" ] && [ ! -f "$2" ]; }
}

# train_model CONFIG MODEL_DIR LOG SEED WHAT: `nanoreward train CONFIG` into MODEL_DIR (logging
# WHAT), unless finished. A run stopped part-way (its checkpoint there, its LOG without "done:")
# is resumed (--init_from=resume), never taken as finished.
train_model() {
  local cfg=$1 dir=$2 logf=$3 s=$4 what=$5 init=scratch
  finished "$dir" "$logf" && return 0
  log "seed $s: $what"
  [ -f "$dir/ckpt/config.json" ] && init=resume
  mkdir -p "$(dirname "$logf")"
  "$NR" train "$ROOT/$cfg" --data_dir="$OUT/data" --out_dir="$dir" --seed="$s" \
    --threads="$THREADS" --init_from="$init" >> "$logf" 2>&1
}

# train_generator SEED_DIR SEED: the quick-start generator in SEED_DIR/gen, unless it is finished.
# With BASE_STEPS set (> 0), the quick-start generator is trained in SEED_DIR/quickstart and
# SEED_DIR/gen is that generator trained on for BASE_STEPS more steps of plain language modelling
# (train_lm_on): a better-trained base for the cycle, as the language-modelling control's.
train_generator() {
  local steps=${BASE_STEPS:-0} at=gen
  [ "$steps" -gt 0 ] && at=quickstart
  if [ -e "$1/gen" ] && [ "$(cat "$1/gen.base_steps" 2>/dev/null || echo 0)" != "$steps" ]; then
    echo "$1/gen was trained with another BASE_STEPS than $steps: use another OUT_DIR" >&2
    exit 1
  fi
  train_model configs/cpu_quickstart.toml "$1/$at" "$1/$at.log" "$2" \
    "generator (configs/cpu_quickstart.toml, 2000 iterations)"
  [ "$steps" -gt 0 ] || return 0
  finished "$1/gen" "$1/gen.log" && return 0
  log "seed $2: the generator trained on for $steps steps of language modelling"
  train_lm_on "$1/quickstart" "$1/gen" "$steps" 1e-4 "$2" "$1/gen.log"
  echo "$steps" > "$1/gen.base_steps"
}

# train_lm_on SRC_DIR DST_DIR STEPS LR SEED LOG: the generator in SRC_DIR trained on, by plain
# next-token loss, for STEPS more iterations (16 windows, constant LR, no warm-up) into DST_DIR
# (through DST_DIR.tmp, so a stopped run leaves nothing half-written); the run's log in LOG, which
# ends with "done: " when it finished. SRC_DIR may be a link: it is copied, never trained in place.
train_lm_on() {
  local src=$1 dst=$2 steps=$3 iters
  rm -rf "$dst.tmp"; cp -rL "$src" "$dst.tmp"
  iters=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['iter_num'])" "$src/ckpt/train_state.json")
  lm_steps resume "$dst" $((iters + steps)) "$steps" "$4" "$5" "$6" --warmup_iters=0
}

# train_lm_from_policy SRC_DIR DST_DIR STEPS LR SEED LOG: train_lm_on for a model trained by
# GRPO (SRC_DIR/ckpt records no training iteration to resume): its weights trained on for STEPS
# iterations from a fresh optimizer as GRPO's (10 warm-up steps, then LR constant; no weight
# decay), into DST_DIR through DST_DIR.tmp; LOG ends with "done: " when it finished.
train_lm_from_policy() {
  rm -rf "$2.tmp"
  lm_steps "$1/ckpt" "$2" "$3" "$3" "$4" "$5" "$6" --warmup_iters=10 --weight_decay=0.0
}

# lm_steps INIT DST_DIR MAX_ITERS STEPS LR SEED LOG [FLAG ...]: the `nanoreward train` of the
# two above, from INIT (resume, or a checkpoint) into DST_DIR.tmp until iteration MAX_ITERS
# (STEPS of them: constant LR, 16 windows, evaluated at the end), then DST_DIR.tmp moved to DST_DIR.
lm_steps() {
  local init=$1 dst=$2 max=$3 steps=$4 lr=$5 s=$6 logf=$7
  shift 7
  "$NR" train "$ROOT/configs/cpu_quickstart.toml" --init_from="$init" --out_dir="$dst.tmp" \
    --data_dir="$OUT/data" --max_iters="$max" --lr_decay_iters="$max" --learning_rate="$lr" \
    --min_lr="$lr" --decay_lr=false --batch_size=16 --always_save_checkpoint=true \
    --eval_interval="$steps" --seed="$s" --threads="$THREADS" "$@" > "$logf" 2>&1
  rm -rf "$dst"; mv "$dst.tmp" "$dst"
}

# train_trunk SEED_DIR SEED: the stronger model of natural text (configs/strong_trunk.toml) in
# SEED_DIR/trunk, unless it is finished.
train_trunk() {
  train_model configs/strong_trunk.toml "$1/trunk" "$1/trunk.log" "$2" \
    "stronger model of natural text (configs/strong_trunk.toml)"
}

# expand_extra SEED_DIR SEED: in the caller's $extra, replaces @TRUNKS by the comma-separated
# stronger models of every seed in REF_SEEDS (default: the run's SEEDS), this seed's first (a
# reference mixture: --reference=@TRUNKS), @TRUNK by this seed's stronger model of natural text
# (each trained once, in OUT/seedR/trunk), and @DATA by the prepared corpus, OUT/data.
expand_extra() {
  local d=$1 s=$2 r refs
  if [[ "$extra" == *@TRUNKS* ]]; then
    train_trunk "$d" "$s"
    refs="$d/trunk/ckpt"
    for r in ${REF_SEEDS:-$SEEDS}; do
      [ "$r" = "$s" ] && continue
      train_trunk "$OUT/seed$r" "$r"
      refs="$refs,$OUT/seed$r/trunk/ckpt"
    done
    extra=${extra//@TRUNKS/$refs}
  fi
  if [[ "$extra" == *@TRUNK* ]]; then
    train_trunk "$d" "$s"
    extra=${extra//@TRUNK/$d/trunk/ckpt}
  fi
  extra=${extra//@DATA/$OUT/data}
}

# cycle_judge SEED_DIR: JUDGE_DIR (the judge_base of the first judged cycle in SEED_DIR),
# JUDGE_TRUNK and JUDGE_SEED (its judge's trunk and seed), so that a control run beside the
# cycle is judged by the same judge; exits when the cycle's judge recorded no seed.
cycle_judge() {
  JUDGE_DIR=$(ls -d "$1"/*/judge_base | head -1)
  JUDGE_TRUNK="$JUDGE_DIR/judge_trunk/ckpt"
  JUDGE_SEED=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1])).get('seed', ''))" "$JUDGE_DIR/judge.json")
  if [ -z "$JUDGE_SEED" ]; then
    echo "$JUDGE_DIR/judge.json records no judge seed (written before nanoreward recorded it): rerun the cycle's judge" >&2
    exit 1
  fi
}

# run_judge GENERATORS TEMPERATURES TRUNK SEED OUT_DIR: `nanoreward judge` of the comma-separated
# generator checkpoints at TEMPERATURES against the corpus's val.bin, with the judge trunk TRUNK
# and judge seed SEED, into OUT_DIR (any further arguments passed on to judge); its table on stdout.
run_judge() {
  "$NR" judge --generators="$1" --temperatures="$2" --trunk="$3" --seed="$4" \
    --data_dir="$OUT/data" --natural="$OUT/data/val.bin" --out_dir="$5" --threads="$THREADS" "${@:6}"
}

# judge_control RUN_DIR LOG: the cycle's judge (after cycle_judge) on RUN_DIR/ckpt at T = 1, into
# RUN_DIR/judge, its table appended to LOG.
judge_control() {
  run_judge "$1/ckpt" 1.0 "$JUDGE_TRUNK" "$JUDGE_SEED" "$1/judge" | tee -a "$2"
}
