#!/usr/bin/env bash
# Fuzzes every loader pretrace has, in process: INPUTS inputs per target (default 10^6), byte
# mutations of the golden fixtures and structured inputs, under the counting allocator.
# Prints one line per target; failing inputs are kept in target/fuzz-failures with a note, the
# reports are written to target/fuzz-report.json, and the exit status is non-zero on any panic,
# multi-line message or allocation past the bound. Extra arguments go to pretrace-fuzz
# (target names, --seed, --first K --inputs 1 to replay one input).
#   scripts/fuzz.sh                      # all targets, 10^6 inputs each
#   INPUTS=10000 scripts/fuzz.sh gguf    # one target, 10^4 inputs
set -euo pipefail
cd "$(dirname "$0")/.."
INPUTS=${INPUTS:-1000000}
# The test profile: optimized like release, with overflow checks and debug assertions on, so an
# arithmetic overflow a hostile number causes is a panic the run counts (and the build is shared
# with `cargo test`).
cargo build --profile test -p pretrace-fuzz --bin pretrace-fuzz
exec target/debug/pretrace-fuzz --inputs "$INPUTS" --keep target/fuzz-failures \
    --json target/fuzz-report.json "$@"
