# Shared by scripts/reward_benchmark.sh and scripts/judge_benchmark.sh (sourced after ROOT, OUT
# and THREADS are set): the nanoreward binary, the log, and the per-seed models both train.

# NR: the nanoreward binary (built with cargo unless NR is set).
if [ -z "${NR:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet)
  NR="${CARGO_TARGET_DIR:-$ROOT/target}/release/nanoreward"
fi

# log MESSAGE: a timestamped line on stdout and in OUT/benchmark.log.
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/benchmark.log"; }

# train_generator SEED_DIR SEED: the quick-start generator in SEED_DIR/gen, unless it exists.
train_generator() {
  local d=$1 s=$2
  if [ ! -f "$d/gen/ckpt/config.json" ]; then
    log "seed $s: generator (configs/cpu_quickstart.toml, 2000 iterations)"
    "$NR" train "$ROOT/configs/cpu_quickstart.toml" --data_dir="$OUT/data" --out_dir="$d/gen" \
      --seed="$s" --threads="$THREADS" > "$d/gen.log" 2>&1
  fi
}

# train_trunk SEED_DIR SEED: the stronger model of natural text (configs/strong_trunk.toml) in
# SEED_DIR/trunk, unless it exists.
train_trunk() {
  local d=$1 s=$2
  if [ ! -f "$d/trunk/ckpt/config.json" ]; then
    mkdir -p "$d"
    log "seed $s: stronger model of natural text (configs/strong_trunk.toml)"
    "$NR" train "$ROOT/configs/strong_trunk.toml" --data_dir="$OUT/data" --out_dir="$d/trunk" \
      --seed="$s" --threads="$THREADS" > "$d/trunk.log" 2>&1
  fi
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
