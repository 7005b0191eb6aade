#!/usr/bin/env bash
# Makes `cargo build --release --features cuda` link on a machine that reaches only the package
# registries (../shared/notes/cuda-offline-build.md): burn's CUDA backend needs LLVM 23.1 with
# NVPTX, which tracel-llvm-bundler downloads from GitHub in its build script. This puts PyPI's
# static LLVM 23.1.1 (mlc-llvm-static + mlc-llvm-static-extra-targets) where the bundler looks,
# with its marker file, so the bundler skips the download. Idempotent; the wheels are cached
# under ~/.cache/nanoreward/.
#
#   scripts/setup_cuda_build.sh && CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda
set -euo pipefail
V=23.1.1.post0
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/nanoreward
SDK=$CACHE/mlc-llvm-$V
D="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4"
LLVM=$SDK/mlc_llvm_static/static
if [ ! -x "$LLVM/bin/llvm-config" ]; then
  W=$(mktemp -d)
  trap 'rm -rf "$W"' EXIT
  echo "downloading LLVM $V static libraries with NVPTX from PyPI (~90 MB)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$W" \
    "mlc-llvm-static==$V" "mlc-llvm-static-extra-targets==$V"
  mkdir -p "$SDK.partial"
  for w in "$W"/*.whl; do python3 -m zipfile -e "$w" "$SDK.partial"; done
  chmod +x "$SDK.partial/mlc_llvm_static/static/bin/llvm-config"   # zipfile drops the exec bit
  rm -rf "$SDK"; mv "$SDK.partial" "$SDK"
fi
if ! "$LLVM/bin/llvm-config" --targets-built | grep -qw NVPTX; then
  echo "error: $LLVM has no NVPTX target; delete $SDK and run again" >&2
  exit 1
fi
mkdir -p "$(dirname "$D")"
if [ "$(readlink "$D" 2>/dev/null)" != "$LLVM" ]; then
  rm -rf "$D"
  ln -s "$LLVM" "$D"
fi
touch "$D/.tracel-llvm-installed"
echo "LLVM $("$LLVM/bin/llvm-config" --version) with NVPTX at $D"
echo "now: unset DOCS_RS; CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda"
