#!/usr/bin/env bash
# One-shot GPU validation (issue 16), in two halves:
#
#   scripts/gpu_check.sh pack   here (no GPU needed): links the CUDA build (scripts/setup_cuda_build.sh
#                               first), strips and xz-compresses it and the CUDA parity tests' binary into
#                               dist/, with nanoGPT's model.py (for the PyTorch rows) beside them.
#   scripts/gpu_check.sh run    on the GPU machine, with dist/ carried along (no Rust, no network):
#                               the parity tests, `bench --device cuda` for config B and the GPT-2-small
#                               shape (config D, batch 8), reward-data generation, PyTorch nanoGPT on the
#                               same shapes (f32, bf16, torch.compile off/on) and one table, in ≤ 8 minutes.
#                               Logs, JSON and table.md go to $OUT (default ./gpu-check).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIST=${DIST:-$ROOT/dist}

pack() {
    set -e
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/nanoreward-target}
    export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
    unset DOCS_RS
    "$ROOT/scripts/setup_cuda_build.sh"
    (cd "$ROOT" && cargo build --release --features cuda)
    local tests
    tests=$(cd "$ROOT" && cargo test --release --features cuda --test cuda_parity --no-run \
        --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "cuda_parity" in m["executable"]:
        print(m["executable"])' | tail -1)
    [ -n "$tests" ] || { echo "error: the cuda_parity test binary was not built"; exit 1; }
    mkdir -p "$DIST/nanogpt"
    strip -o "$DIST/nanoreward-cuda" "$CARGO_TARGET_DIR/release/nanoreward"
    strip -o "$DIST/cuda_parity" "$tests"
    xz -T2 -6 -f "$DIST/nanoreward-cuda" "$DIST/cuda_parity"
    local nanogpt=${NANOGPT:-$ROOT/../shared/bench/nanogpt}
    if [ -f "$nanogpt/model.py" ]; then
        cp "$nanogpt/model.py" "$nanogpt/LICENSE" "$DIST/nanogpt/"
    else
        echo "warning: no nanoGPT model.py at $nanogpt (set NANOGPT): the PyTorch rows will be skipped"
    fi
    ls -l "$DIST" "$DIST/nanogpt"
    echo "carry dist/ to the GPU machine and run: scripts/gpu_check.sh run"
}

# step NAME SECONDS COMMAND...: runs COMMAND under a time limit, its output in $OUT/NAME.log.
step() {
    local name=$1 limit=$2 t0=$SECONDS rc
    shift 2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    echo "$name: exit $rc in $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}

run() {
    OUT=${OUT:-$PWD/gpu-check}
    mkdir -p "$OUT"
    : > "$OUT/steps.txt"
    if ! nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1; then
        echo "error: no NVIDIA GPU here (nvidia-smi failed: $(head -1 "$OUT/gpu.txt")); run this on the GPU machine"
        exit 2
    fi
    for f in nanoreward-cuda.xz cuda_parity.xz; do
        [ -f "$DIST/$f" ] || { echo "error: $DIST/$f is missing: run 'scripts/gpu_check.sh pack' where Rust is, and carry dist/"; exit 2; }
    done
    local bin=$OUT/bin
    mkdir -p "$bin"
    xz -dc "$DIST/nanoreward-cuda.xz" > "$bin/nanoreward" && xz -dc "$DIST/cuda_parity.xz" > "$bin/cuda_parity"
    chmod +x "$bin/nanoreward" "$bin/cuda_parity"
    echo "GPU: $(cat "$OUT/gpu.txt")"
    step parity 90 "$bin/cuda_parity" --test-threads 1
    step ours-B 60 "$bin/nanoreward" bench --device cuda --config B --iters 15 --json
    step ours-D 90 "$bin/nanoreward" bench --device cuda --config D --batch-size 8 --iters 14 --json
    step ours-D-bf16 90 "$bin/nanoreward" bench --device cuda --config D --batch-size 8 --iters 14 --dtype bfloat16 --json
    step ours-reward-data 45 "$bin/nanoreward" bench --reward-data --device cuda --config B --json
    if [ -f "$DIST/nanogpt/model.py" ] && python3 -c 'import torch' 2>/dev/null; then
        local tb=("python3" "$ROOT/scripts/torch_gpu_bench.py" --nanogpt "$DIST/nanogpt")
        step torch-B 45 "${tb[@]}" --config B --seed_loop 20
        step torch-D-f32 45 "${tb[@]}" --config D --batch_size 8
        step torch-D-bf16 45 "${tb[@]}" --config D --batch_size 8 --dtype bfloat16
        step torch-D-bf16-compile 90 "${tb[@]}" --config D --batch_size 8 --dtype bfloat16 --compile 1
    else
        echo "PyTorch rows skipped: no $DIST/nanogpt/model.py or no torch" | tee -a "$OUT/steps.txt"
    fi
    python3 - "$OUT" "$ROOT/scripts" <<'EOF' | tee "$OUT/table.md"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
sys.path.insert(0, sys.argv[2])
from torch_gpu_bench import flops_per_token  # noqa: E402 (no torch needed)
def lines(name):
    f = out / f"{name}.log"
    return [json.loads(x) for x in f.read_text().splitlines() if x.startswith("{")] if f.exists() else []
print(f"GPU: {(out / 'gpu.txt').read_text().strip()}\n")
print((out / "steps.txt").read_text())
print("| who | config | batch | dtype | compile | step ms | tokens/s | MFU (bf16 peak 989 TFLOPS) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name in ["ours-B", "ours-D", "ours-D-bf16"]:
    for r in lines(name):
        tok = r["train_tokens_per_s"]
        mfu = tok * flops_per_token(r["config"]) / 989e12
        print(f"| nanoreward | {r['config']} | {r['batch_size']} | {r.get('dtype', 'float32')} | - | {r['train_step_ms_median']:.1f} | {tok:,.0f} | {mfu:.1%} |")
for name in ["torch-B", "torch-D-f32", "torch-D-bf16", "torch-D-bf16-compile"]:
    for r in lines(name):
        if r.get("who") == "pytorch":
            print(f"| PyTorch nanoGPT | {r['config']} | {r['batch_size']} | {r['dtype']} | {r['compile']} | {r['step_ms']:.1f} | {r['tokens_per_s']:,.0f} | {r['mfu']:.1%} |")
ours = lines("ours-reward-data")
seed = [r for r in lines("torch-B") if r.get("who") == "pytorch-seed-loop"]
if ours:
    o = ours[0]
    line = f"\nreward data, config B: nanoreward {o['samples_per_s']:.1f} samples/s"
    if seed:
        line += f"; PyTorch nanoGPT's seed loop {seed[0]['samples_per_s']:.2f} samples/s ({o['samples_per_s'] / seed[0]['samples_per_s']:.1f}x)"
    print(line)
EOF
}

case "${1:-}" in
    pack) pack ;;
    run) run ;;
    *) echo "usage: scripts/gpu_check.sh pack|run (see the comment at its top)"; exit 2 ;;
esac
