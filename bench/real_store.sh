#!/usr/bin/env bash
# Builds (or reuses) the benchmark store of real features: SmolLM2-135M-Instruct (f32), all 30 layers,
# the first ROWS rows of each of the paper's five labeled datasets (../shared/datasets/tracingllm).
# Prints the store's path. Usage: bench/real_store.sh [THREADS] [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rows=${2:-600}
gguf=$(bench/smollm2.sh)
shared=../shared/datasets/tracingllm
[ -d "$shared" ] || { echo "needs $shared (the paper's datasets)" >&2; exit 1; }
cargo build --release -q -p pretrace-cli
work=.cache/bench-store-$rows
mkdir -p "$work/data"
args=()
for d in truthfulqa_train toxigen confaide stereoset sst2; do
  python3 - "$shared/$d.csv" "$work/data/$d.csv" "$rows" <<'PY'
import csv, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.reader(open(src, newline="", encoding="utf-8")))
with open(dst, "w", newline="", encoding="utf-8") as f:
    csv.writer(f, lineterminator="\r\n").writerows(rows[: n + 1])
PY
  args+=(--data "$work/data/$d.csv")
done
./target/release/pretrace --threads "$threads" extract --checkpoints "$gguf" "${args[@]}" --out "$work/store" >&2
echo "$work/store"
