#!/usr/bin/env bash
# Activation extraction, pretrace vs transformers (batched, and the paper's one-row procedure), and
# the machine's f32 matmul rate, same rows, same machine, same run. SmolLM2-135M-Instruct (GGUF,
# dequantized to f32), 500 rows of sst2.csv, all 30 layers, CPU. See bench/extract_ref.py.
# Needs: python3 with torch, transformers, gguf, numpy, safetensors.
# Usage: bench/extract.sh [THREADS] [ROUNDS] [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${2:-3}
rows=${3:-500}
gguf=$(bench/smollm2.sh)
data=../shared/datasets/tracingllm/sst2.csv
[ -f "$data" ] || { echo "needs ../shared/datasets/tracingllm/sst2.csv (real text rows)" >&2; exit 1; }
cargo build --release -q -p pretrace-cli -p pretrace-bench
python3 bench/extract_ref.py --gguf "$gguf" --data "$data" --rows "$rows" --threads "$threads" --rounds "$rounds" \
  --pretrace ./target/release/pretrace --matmul ./target/release/bench-matmul 2> >(grep -v -i "warn\|convert\|loading" >&2)
