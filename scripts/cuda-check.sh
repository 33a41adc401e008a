#!/usr/bin/env bash
# The `cuda` build on a machine without a GPU (what CI runs): it compiles, with candle's CUDA
# kernels, from the package registries alone (scripts/cuda-toolchain.sh), and the binary starts
# against the toolchain's link stubs, which behave as a driver with no GPU:
# - `pretrace --version` says it is the cuda build;
# - `--device cuda` is a one-line error naming the device, exit status non-zero, nothing written;
# - `--device cpu` gives the default build's numbers, byte for byte.
# Usage: scripts/cuda-check.sh [DEFAULT_BINARY]   (default: target/debug/pretrace, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cuda-toolchain.sh)"
t0=$(date +%s)
cargo build -q -p pretrace-cli --features cuda --target-dir target/cuda
echo "cuda-check: the cuda build compiled in $(( $(date +%s) - t0 )) s"
cuda_bin=target/cuda/debug/pretrace
cpu_bin=${1:-target/debug/pretrace}
[ -x "$cpu_bin" ] || cargo build -q -p pretrace-cli
export LD_LIBRARY_PATH="$CUDA_HOME/lib/stubs:$CUDA_HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fail() { echo "cuda-check: FAIL: $*" >&2; exit 1; }
"$cuda_bin" --version | grep -q '(cuda)' || fail "--version does not name the cuda build"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model=tests/golden/llama_gqa
set +e
err=$("$cuda_bin" forward --model "$model" --ids 1,2,3 --out "$work/gpu.safetensors" --device cuda 2>&1)
code=$?
set -e
[ "$code" -ne 0 ] || fail "--device cuda succeeded without a GPU"
[ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] || fail "the error is not one line: $err"
case "$err" in
  "error: cuda:0: no usable NVIDIA GPU"*) ;;
  *) fail "unexpected error: $err" ;;
esac
[ ! -e "$work/gpu.safetensors" ] || fail "a refused run wrote its output"
echo "cuda-check: without a GPU: $err"
"$cuda_bin" forward --model "$model" --ids 1,2,3,4,5 --out "$work/a.safetensors" --device cpu 2>/dev/null
"$cpu_bin" forward --model "$model" --ids 1,2,3,4,5 --out "$work/b.safetensors" 2>/dev/null
# Tensors and their bytes equal; the metadata (a hash map, in any order) equal as a map.
python3 - "$work/a.safetensors" "$work/b.safetensors" <<'EOF' || fail "--device cpu of the cuda build differs from the default build"
import json, struct, sys
def read(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    return h, meta, b[8 + n:]
a, b = read(sys.argv[1]), read(sys.argv[2])
sys.exit(0 if a == b else 1)
EOF
echo "cuda-check: ok (the cuda build's CPU forward equals the default build's, byte for byte)"
