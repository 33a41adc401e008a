#!/usr/bin/env bash
# The paper's probes, pretrace vs scikit-learn, on the same store of real features, same machine, same
# run: SmolLM2-135M-Instruct (f32), all 30 layers, the first ROWS rows of each of the paper's five
# labeled datasets (bench/real_store.sh). See bench/probe_ref.py.
# Needs: python3 with numpy, scikit-learn, safetensors. Usage: bench/probe.sh [THREADS] [ROUNDS] [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${2:-3}
rows=${3:-600}
store=$(bench/real_store.sh "$threads" "$rows")
python3 bench/probe_ref.py --store "$store" --pretrace ./target/release/pretrace --threads "$threads" --rounds "$rounds"
