#!/usr/bin/env bash
# The reward-model benchmark of BENCHMARKS.md, from the corpus: for every seed, train the
# quick-start generator, build reward data from natural text it never trained on, train the
# reward models named on the command line and evaluate each (256+ windows per class, an
# evaluation seed unrelated to the data's), then summarise mean and spread over the seeds.
#
#   scripts/reward_benchmark.sh OUT_DIR "SEEDS" NAME=CONFIG.toml[:extra --key=value ...] ...
#   e.g. scripts/reward_benchmark.sh out/rb "1 2 3" pooled=configs/reward_pooled.toml token=configs/reward_token.toml
#
# Environment: NR (the nanoreward binary; default: cargo build --release), INPUT (the corpus;
# default ../shared/data/tinyshakespeare/input.txt), SPLIT (heldout: 80/20 of val.bin, the
# default; reward: prepare --reward_split REWARD_SPLIT (0.3; keep it for an OUT_DIR) and reward.bin),
# THREADS (2), EXTRA_TRAIN (token files, space-separated, of more natural text the generator never
# trained on for the reward data's train split only, e.g. EXTRA_TRAIN=@DATA/val.bin with
# SPLIT=reward; keep it for an OUT_DIR). A generator or trunk stopped part-way is resumed on the
# next run. Extra keys after a colon go to train-reward, e.g.
# strong=configs/reward_token.toml:--trunk=out/strong/ckpt; the word @TRUNK there stands for a
# stronger trunk trained per seed on the generator's train split
# (configs/strong_trunk.toml, once per seed, in SEED_DIR/trunk), e.g.
#   strong=configs/reward_token.toml:--trunk=@TRUNK --lexicon_text=@DATA/train.bin
# (@DATA: the prepared corpus, OUT/data). The strongest recipe measured (BENCHMARKS.md) also reads
# that trunk as the reference model:
#   strongref=configs/reward_token.toml:--trunk=@TRUNK --reference=@TRUNK --lexicon_text=@DATA/train.bin
# and @TRUNKS stands for the stronger models of every seed in REF_SEEDS (default: SEEDS), this
# seed's first, read as one reference mixture:
#   mix=configs/reward_token.toml:--trunk=@TRUNK --reference=@TRUNKS --lexicon_text=@DATA/train.bin
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$1; SEEDS=$2; shift 2
INPUT=${INPUT:-$ROOT/../shared/data/tinyshakespeare/input.txt}
SPLIT=${SPLIT:-heldout}
THREADS=${THREADS:-2}
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
# shellcheck source=scripts/bench_lib.sh
. "$ROOT/scripts/bench_lib.sh"
if [ "$SPLIT" = reward ]; then
  "$NR" prepare --input "$INPUT" --out-dir "$OUT/data" --reward-split "${REWARD_SPLIT:-0.3}" > /dev/null
  HELD="$OUT/data/reward.bin"
else
  "$NR" prepare --input "$INPUT" --out-dir "$OUT/data" > /dev/null
  HELD="$OUT/data/val.bin"
fi
more=()
for f in ${EXTRA_TRAIN:-}; do more+=(--extra_train_bin "${f//@DATA/$OUT/data}"); done
summary=()
for s in $SEEDS; do
  d="$OUT/seed$s"; mkdir -p "$d"
  train_generator "$d" "$s"
  if [ ! -f "$d/rd/val_metadata.txt" ]; then
    log "seed $s: reward data (held-out text: $HELD)"
    "$NR" prepare-reward-data --model_path "$d/gen" --input_mode heldout --val_bin "$HELD" \
      --output_dir "$d/rd" --seed $((100 + s)) --threads "$THREADS" "${more[@]}" > "$d/rd.log" 2>&1
  fi
  for spec in "$@"; do
    name=${spec%%=*}; rest=${spec#*=}; cfg=${rest%%:*}; extra=""
    [ "$rest" != "$cfg" ] && extra=${rest#*:}
    expand_extra "$d" "$s"
    if [ ! -f "$d/$name/eval.json" ]; then
      log "seed $s: reward model $name ($cfg $extra)"
      t0=$(date +%s)
      # shellcheck disable=SC2086
      "$NR" train-reward "$ROOT/$cfg" --base="$d/gen/ckpt" --data="$d/rd" --out_dir="$d/$name" \
        --seed="$s" --threads="$THREADS" $extra > "$d/$name.log" 2>&1
      "$NR" eval-reward --checkpoint "$d/$name/ckpt" --windows 256 --seed $((1000 + s)) \
        --output-dir "$d/$name" > "$d/$name.eval.log" 2>&1
      log "seed $s: $name done in $(( $(date +%s) - t0 )) s: $(grep -E 'AUROC natural|MAE of' "$d/$name.eval.log" | tr -s ' ' | tr '\n' ';')"
    fi
    summary+=("$name=$d/$name/eval.json")
  done
done
python3 "$ROOT/scripts/reward_summary.py" "${summary[@]}" | tee "$OUT/summary.md"
