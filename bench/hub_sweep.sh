#!/usr/bin/env bash
# A sweep of checkpoints from the hub under a disk budget of two checkpoints: downloads overlap
# extraction. 8 distinct LLaMA checkpoints served by a local stand-in for the hub on 127.0.0.1,
# throttled to a fixed bandwidth; each round times the downloads alone, the extraction alone (from
# the full cache, offline) and the sweep (empty cache, --cache-budget) while measuring the cache's
# size on disk. See bench/src/hub_sweep.rs. Needs nothing beyond the Rust build.
# Usage: bench/hub_sweep.sh ['RATE_MB_PER_S …'] [ROUNDS] [ROWS]   (default: '25 40 80' 3 240:
# download-bound, about balanced, extraction-bound on a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
rates=${1:-25 40 80}
rounds=${2:-3}
rows=${3:-240}
cargo build --release -q -p pretrace-cli -p pretrace-bench
work=${TMPDIR:-/tmp}/pretrace-bench-hub
mkdir -p "$work"
for rate in $rates; do
  echo "== $rate MB/s"
  ./target/release/bench-hub-sweep --pretrace ./target/release/pretrace --work "$work" \
    --text bench/text.txt --checkpoints 8 --rate "$rate" --rounds "$rounds" --rows "$rows"
done
