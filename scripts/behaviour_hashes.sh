#!/usr/bin/env bash
# Fingerprints of what a build writes, for refactors that must not change behaviour:
# SHA-256 of prepare's files, a trained checkpoint, two reward datasets (text and held-out mode, fixed
# seeds), sample output, a reward model and a GRPO policy, plus the demo's report figures (timings left out).
# usage: scripts/behaviour_hashes.sh NANOREWARD_BINARY WORK_DIR > hashes.txt   (~4 min on 2 cores)
set -euo pipefail
BIN=$(realpath "$1"); W=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
INPUT=${INPUT:-$ROOT/../shared/data/tinyshakespeare/input.txt}
rm -rf "$W"; mkdir -p "$W"; W=$(cd "$W" && pwd); cd "$W"
h() { sha256sum "$@" | sed "s#  $W/#  #; s#  \./#  #"; }
# Metadata minus its creation time and absolute paths (they name this run's folder).
meta() { for f in "$@"; do printf '%s  %s\n' "$(grep -v -e '^created_at' -e '_path:' -e '^source:' "$f" | sha256sum | cut -c1-64)" "$f (sans created_at, paths)"; done; }
q() { "$@" >/dev/null 2>&1; }
q "$BIN" prepare --input "$INPUT" --out-dir data
h data/train.bin data/val.bin data/meta.pkl
q "$BIN" train "$ROOT/configs/cpu_quickstart.toml" --data_dir=data --out_dir=base --max_iters=60 \
  --lr_decay_iters=60 --eval_interval=30 --eval_iters=5 --threads=2 --always_save_checkpoint=true
h base/ckpt/model.safetensors base/ckpt/optimizer.safetensors
q "$BIN" prepare-reward-data --model_path base --data_path "$INPUT" --output_dir rd --max_blocks 30 \
  --seed 7 --threads 2 --batch_size 16
h rd/train_x.bin rd/train_y.bin rd/val_x.bin rd/val_y.bin; meta rd/train_metadata.txt rd/val_metadata.txt
q "$BIN" prepare-reward-data --model_path base/ckpt --input_mode heldout --val_bin data/val.bin \
  --output_dir rdh --max_blocks 40 --seed 11 --threads 2 --top_k 20 --temperature 0.9
h rdh/train_x.bin rdh/train_y.bin rdh/val_x.bin rdh/val_y.bin rdh/heldout_source/heldout_train.bin
"$BIN" sample --out_dir base --seed 5 --num-samples 3 --max-new-tokens 90 2>/dev/null > sample.txt
h sample.txt
q "$BIN" train-reward --base=base/ckpt --data=rdh --out_dir=rm --epochs=2 --threads=2
h rm/ckpt/model.safetensors
grep -o '"mae": [0-9.]*\|"auroc": [0-9.]*\|"boundary_mae_tokens": [0-9.]*' rm/eval.json | tr '\n' ' '; echo
q "$BIN" grpo "$ROOT/configs/grpo_quickstart.toml" --init_from=base/ckpt --reward_model=rm/ckpt \
  --data_dir=data --out_dir=grpo --max_steps=4 --eval_interval=2 --threads=2 --eval_prompts=8 --eval_iters=2
h grpo/ckpt/model.safetensors
# (from the repository root: earlier builds read configs/ relative to the working directory)
(cd "$ROOT" && "$BIN" demo --input "$INPUT" --out-dir "$W/demo" --max-iters 60 --reward-blocks 20 \
  --grpo-steps 4 --threads 2 2>/dev/null) | sed -n '/== report/,$p' \
  | sed -E "s/^(  [a-zA-Z ]{17}) +[0-9.]+ s/\\1/; s#$W/##g" > demo_report.txt
h demo_report.txt
cat demo_report.txt
