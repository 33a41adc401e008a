#!/usr/bin/env bash
# Sets up what `cargo build --features cuda` needs on a machine without a GPU or a CUDA install,
# from the package registries only, and prints the environment to build with:
#
#   eval "$(scripts/cuda-toolchain.sh)"
#   cargo build --release -p pretrace-cli --features cuda
#
# - CUDA 13.0's compiler from NVIDIA's PyPI wheels (nvidia-cuda-nvcc with nvidia-nvvm,
#   nvidia-cuda-runtime, nvidia-cuda-crt and nvidia-cuda-cccl (libcu++ headers), all pinned to
#   13.0: PTX from a newer compiler does
#   not load on a 13.0 driver), installed under .cache/cuda-13.0 (or $PRETRACE_CUDA_ROOT);
# - link stubs for the libraries the binary loads at run time from the GPU machine's driver and
#   CUDA libraries (libcuda.so.1, libcublas.so.13, libcublasLt.so.13, libcurand.so.10,
#   libnvrtc.so.13): one symbol per function of cudarc's bindings, each returning an error code
#   (cuInit: CUDA_ERROR_NO_DEVICE, so that a cuda binary run against the stubs behaves as on a
#   machine with a driver and no GPU).
#   The real ones are found at run time (the driver's libcuda; cuBLAS, cuRAND and NVRTC from a
#   CUDA 13 install or torch's cu130 wheels, through LD_LIBRARY_PATH);
# - CUDA_COMPUTE_CAP (default 90, Hopper; 80 for Ampere), since there is no nvidia-smi to ask.
#
# Nothing here fetches sources during the build (candle's flash-attn crate, which clones CUTLASS,
# is not used).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${PRETRACE_CUDA_ROOT:-$PWD/.cache/cuda-13.0}
cap=${CUDA_COMPUTE_CAP:-90}
py=${PYTHON:-python3}
log() { echo "cuda-toolchain: $*" >&2; }

if [ ! -x "$root/py/nvidia/cu13/bin/nvcc" ] || [ ! -e "$root/py/nvidia/cu13/include/nv/target" ]; then
  log "installing CUDA 13.0's compiler wheels into $root/py"
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade --target "$root/py" \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 \
    nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85 >&2
fi
cu=$root/py/nvidia/cu13
[ -x "$cu/bin/nvcc" ] || { log "no nvcc in $cu/bin after the install"; exit 1; }
chmod +x "$cu"/bin/* "$cu"/nvvm/bin/* 2>/dev/null || true
# The runtime wheel ships libcudart.so.13 only; the linker looks for libcudart.so.
ln -sf libcudart.so.13 "$cu/lib/libcudart.so"

# cudarc's bindings list the functions the binary may call, per library.
cudarc=$(cargo metadata --format-version 1 --features pretrace-cli/cuda 2>/dev/null |
  "$py" -c 'import json,sys,os
m=json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"]=="cudarc"))')
[ -d "$cudarc/src" ] || { log "cudarc's sources not found (cargo fetch first)"; exit 1; }
stubs=$cu/lib/stubs
mkdir -p "$stubs"
stub() { # SONAME LINKNAME BINDINGS
  local soname=$1 link=$2 src=$cudarc/src/$3
  [ -s "$stubs/$link" ] && [ "$stubs/$link" -nt "$src" ] && [ -e "$stubs/$soname" ] && return 0
  grep -oE 'pub unsafe fn [A-Za-z_][A-Za-z0-9_]*\(' "$src" | sed -E 's/pub unsafe fn ([A-Za-z0-9_]+)\(/\1/' |
    sort -u | awk '{ code = ($1 == "cuInit") ? 100 : 999; print "int " $1 "(void) { return " code "; }" }' \
    > "$stubs/${link%.so}.c"
  gcc -shared -fPIC -O0 -Wl,-soname,"$soname" -o "$stubs/$link" "$stubs/${link%.so}.c"
  rm -f "$stubs/${link%.so}.c"
  ln -sf "$link" "$stubs/$soname"
}
stub libcuda.so.1 libcuda.so driver/sys/mod.rs
stub libcublas.so.13 libcublas.so cublas/sys/mod.rs
stub libcublasLt.so.13 libcublasLt.so cublaslt/sys/mod.rs
stub libcurand.so.10 libcurand.so curand/sys/mod.rs
stub libnvrtc.so.13 libnvrtc.so nvrtc/sys/mod.rs
log "nvcc $("$cu/bin/nvcc" --version | grep -o 'release [0-9.]*'), compute capability $cap, stubs in $stubs"

cat <<EOF
export CUDA_HOME='$cu'
export CUDA_PATH='$cu'
export NVCC='$cu/bin/nvcc'
export PATH='$cu/bin':"\$PATH"
export CUDA_COMPUTE_CAP=$cap
export CUDARC_CUDA_VERSION=13000
export LIBRARY_PATH='$stubs:$cu/lib'\${LIBRARY_PATH:+:\$LIBRARY_PATH}
EOF
