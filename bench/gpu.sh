#!/usr/bin/env bash
# pretrace on an NVIDIA GPU against transformers on the same GPU: parity on every golden fixture
# (f32 and bf16, greedy decoding, steering) and extraction throughput (a SmolLM2-shaped model and an
# Amber-7B-shaped LLaMA, bf16, batched, base model). See bench/gpu_ref.py.
#
# Runs on the GPU machine (nvcc 13.0, a Python with torch cu130 and transformers, no Rust, no
# network) from the repository root, with a `cuda` binary built elsewhere:
#
#   eval "$(scripts/cuda-toolchain.sh)" && cargo build --release -p pretrace-cli --features cuda \
#     --target-dir target/cuda && mkdir -p .cache/gpu && strip -o .cache/gpu/pretrace \
#     target/cuda/release/pretrace && xz -f -T2 .cache/gpu/pretrace
#   # then, there (carrying .cache/gpu):   bench/gpu.sh .cache/gpu/pretrace.xz
# (the stripped cuda binary is about 79 MB, over the 64 MiB a carry may hold; xz makes it about 12)
#
# Usage: bench/gpu.sh [BIN[.xz]] [parity|throughput|all]   (default: .cache/gpu/pretrace.xz all)
# Results go to $OUT (the device tool's output folder) or /tmp/pretrace-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.cache/gpu/pretrace.xz}
what=${2:-all}
out=${OUT:-/tmp/pretrace-gpu}
mkdir -p "$out"
if [ "${bin%.xz}" != "$bin" ]; then
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
    "$bin" /tmp/pretrace-cuda
  chmod +x /tmp/pretrace-cuda
  bin=/tmp/pretrace-cuda
fi
[ -x "$bin" ] || { echo "no cuda binary at $bin (build it with --features cuda and carry it)" >&2; exit 1; }
# The CUDA libraries the binary links (cuBLAS, cuBLASLt, cuRAND, NVRTC, the runtime) from torch's
# wheels; the driver's libcuda.so.1 comes from the system.
libs=$(python3 - <<'EOF'
import glob, os
import nvidia
dirs = set()
for p in nvidia.__path__:
    for f in glob.glob(os.path.join(p, "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(f))
print(":".join(sorted(dirs)))
EOF
)
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
"$bin" --version | tee -a "$out/gpu.txt"
status=0
if [ "$what" = all ] || [ "$what" = parity ]; then
  python3 bench/gpu_ref.py parity --pretrace "$bin" --out "$out/parity" 2>&1 | tee "$out/parity.log" || status=1
fi
if [ "$what" = all ] || [ "$what" = throughput ]; then
  python3 bench/gpu_ref.py throughput --pretrace "$bin" --out "$out/throughput" 2>&1 | tee "$out/throughput.log" || status=1
  # The generated models stay out of what comes back.
  rm -rf "$out/throughput/"*-shaped
fi
exit $status
