#!/usr/bin/env bash
# Batched forward throughput, pretrace vs transformers, same inputs, same machine, same run.
# SmolLM2-135M-Instruct (GGUF, dequantized to f32), 64 rows x 64 tokens of real text, f32, CPU,
# full logits. Both stay loaded and alternate run by run (see bench/forward_ref.py).
# Needs: python3 with torch, transformers, accelerate, gguf. Usage: bench/forward.sh [THREADS] [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
pairs=${2:-7}
gguf=$(bench/smollm2.sh)
text=../shared/datasets/tracingllm/sst2.csv
[ -f "$text" ] || text=bench/text.txt
cargo build --release -q -p pretrace-bench
python3 bench/forward_ref.py --gguf "$gguf" --text "$text" --threads "$threads" --pairs "$pairs" --pretrace ./target/release/bench-forward 2> >(grep -v -i "warn\|convert\|loading" >&2)
