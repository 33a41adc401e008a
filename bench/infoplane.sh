#!/usr/bin/env bash
# The paper's nHSIC information plane, pretrace vs float64 NumPy, on the same store of real features,
# same machine, same run: SmolLM2-135M-Instruct (f32), all 30 layers, the first ROWS rows of each of
# the paper's five labeled datasets (bench/real_store.sh). See bench/infoplane_ref.py.
# Needs: python3 with numpy, safetensors. Usage: bench/infoplane.sh [THREADS] [ROUNDS] [ROWS]
# A store given as STORE=path replaces the built one (e.g. fewer layers and more rows, for large m);
# EXTRA=--skip-paper leaves out the slow paper-style NumPy side.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
rounds=${2:-3}
rows=${3:-600}
store=${STORE:-$(bench/real_store.sh "$threads" "$rows")}
OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads \
  python3 bench/infoplane_ref.py --store "$store" --pretrace ./target/release/pretrace --threads "$threads" --rounds "$rounds" ${EXTRA:-}
