#!/usr/bin/env bash
# Runs llama.cpp with control vectors `pretrace steer export --format gguf` wrote, beside
# `pretrace generate --steer-positions all` with the same vectors at layers L-1, L and L+1, on an F32
# copy of SmolLM2-135M-Instruct (llama-quantize --allow-requantize ... F32, so that neither side
# computes with quantized weights). Greedy, 24 tokens. Writes what it printed to
# tests/golden/cvec/llamacpp.txt. llama.cpp adds direction.L to the output of block L at every
# position; the continuation equal to llama.cpp's should be pretrace's at layer L.
#
# Usage: tests/golden/cvec_llamacpp.sh LLAMA_CPP_BIN_DIR   (a build with llama-completion and
#        llama-quantize; needs python3 with numpy and safetensors, and a release build of pretrace)
set -euo pipefail
cd "$(dirname "$0")/../.."
B=$1
PT=./target/release/pretrace
tmp=$(mktemp -d)
gguf=$(bench/smollm2.sh)
"$B/llama-quantize" --allow-requantize "$gguf" "$tmp/f32.gguf" F32 >/dev/null 2>&1
M=$tmp/f32.gguf
N=24
python3 - "$tmp" <<'PY'
import sys, numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(0)
vs = {}
for layer in (10, 15):
    v = rng.standard_normal(576).astype(np.float32)
    vs[f"blocks.{layer}.hook_resid_post"] = v * np.float32(10.0 / np.linalg.norm(v))
    save_file({"v": vs[f"blocks.{layer}.hook_resid_post"]}, f"{sys.argv[1]}/raw{layer}.safetensors")
save_file(vs, f"{sys.argv[1]}/vectors.safetensors", metadata={"format": "pretrace-steering-vector", "architecture": "llama", "d_model": "576"})
PY
lc() { "$B/llama-completion" -m "$M" -p "$1" -n $N --temp 0 -t 2 --no-warmup -no-cnv --no-display-prompt "${@:2}" 2>/dev/null | tr '\n' ' ' | sed 's/[[:space:]]*$//'; }
pt() { $PT generate --model "$M" --text "$1" --max-new-tokens $N "${@:2}" 2>/dev/null | tr '\n' ' ' | sed 's/[[:space:]]*$//'; }
{
  echo "llama.cpp: $("$B/llama-completion" --version 2>&1 | head -1)"
  for P in "The capital of France is" "Q: Is the Great Wall of China visible from space?	A:"; do
    echo "=== prompt: $P"
    a=$(lc "$P"); b=$(pt "$P")
    echo "llama.cpp unsteered    : $a"
    echo "pretrace  unsteered    : $b"
    for L in 10 15; do
      $PT steer export --format gguf --vector "$tmp/vectors.safetensors" --layers $L --alpha 4 --out "$tmp/v$L.gguf" 2>/dev/null
      ref=$(lc "$P" --control-vector "$tmp/v$L.gguf")
      echo "llama.cpp direction.$L : $ref"
      for S in $((L - 1)) $L $((L + 1)); do
        got=$(pt "$P" --steer "$tmp/raw$L.safetensors" --steer-layer $S --alpha 4 --steer-positions all)
        same=$([ "$got" = "$ref" ] && echo "same" || echo "differs")
        echo "pretrace  layer $S     : $got  [$same]"
      done
    done
  done
} | tee tests/golden/cvec/llamacpp.txt
rm -rf "$tmp"
