#!/usr/bin/env bash
# The lab's training step, pretrace (candle autograd) vs PyTorch, same model, same initial weights,
# same batches, same optimizer, same machine, same run. Also compares the losses step by step.
# Needs: python3 with torch, transformers, safetensors.
# Usage: bench/train.sh [THREADS] [STEPS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
steps=${2:-30}
rounds=${3:-3}
cargo build --release -q -p pretrace-bench
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for r in $(seq 1 "$rounds"); do
  sleep 1
  RAYON_NUM_THREADS=$threads ./target/release/bench-train --out "$dir/r$r" --steps "$steps"
  sleep 1
  python3 bench/train_ref.py "$dir/r$r" "$threads" 2> >(grep -v -i "warn\|loading" >&2)
done
python3 - "$dir" "$rounds" "$steps" <<'PY'
import json, statistics, sys
d, rounds, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ratios, ours, refs, worst, worst_rel = [], [], [], 0.0, 0.0
for r in range(1, rounds + 1):
    a = json.load(open(f"{d}/r{r}/pretrace.json"))
    b = json.load(open(f"{d}/r{r}/torch.json"))
    # Medians over the steps after the first two (warm-up).
    ta = statistics.median(x["seconds"] for x in a["steps"][2:])
    tb = statistics.median(x["seconds"] for x in b["steps"][2:])
    la = [x["loss"] for x in a["steps"]]
    lb = [x["loss"] for x in b["steps"]]
    diff = max(abs(x - y) for x, y in zip(la, lb))
    worst = max(worst, diff)
    ours.append(1 / ta); refs.append(1 / tb); ratios.append(tb / ta)
    print(f"round {r}: torch {1/tb:.2f} steps/s, pretrace {1/ta:.2f} steps/s, ratio {tb/ta:.2f}x; "
          f"loss {la[0]:.4f} -> {la[-1]:.4f} (torch {lb[0]:.4f} -> {lb[-1]:.4f}), max |dloss| {diff:.2e}")
tok = a["tokens_per_step"]
print(f"model {a['parameters']} parameters, {tok} tokens/step, {steps} steps, torch {b['torch']}")
print(f"median: torch {statistics.median(refs):.2f} steps/s, pretrace {statistics.median(ours):.2f} steps/s, "
      f"pretrace is {statistics.median(ratios):.2f}x; worst loss difference over all steps {worst:.2e}")
PY
