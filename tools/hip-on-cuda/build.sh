#!/usr/bin/env bash
# Builds the HIP-on-CUDA shim: libamdhip64.so.5 (SONAME libamdhip64.so.5, symbols versioned hip_4.2) on
# the CUDA driver API and NVRTC.
#   tools/hip-on-cuda/build.sh OUTDIR            build OUTDIR/libamdhip64.so.5 (+ .so link)
#   tools/hip-on-cuda/build.sh --check           compile-check only (no link; needs cuda.h and nvrtc.h),
#                                                and the struct layout against /usr/include/hip if present
# Environment: CUDA_HOME (default /usr/local/cuda), CUDA_INC (default $CUDA_HOME/include; cuda.h),
# NVRTC_INC (default $CUDA_INC; nvrtc.h), CC (gcc). Without a toolkit, the pip wheels
# nvidia-cuda-runtime-cu12 and nvidia-cuda-nvrtc-cu12 ship both headers.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
CUDA_INC="${CUDA_INC:-$CUDA_HOME/include}"
NVRTC_INC="${NVRTC_INC:-$CUDA_INC}"
CC="${CC:-gcc}"
flags=(-std=gnu11 -O2 -Wall -Wextra -Werror -fPIC -fvisibility=hidden -I"$CUDA_INC" -I"$NVRTC_INC" -I"$here")

if [[ "${1:-}" == "--check" ]]; then
    "$CC" "${flags[@]}" -fsyntax-only "$here/hip_shim.c"
    echo "hip_shim.c: ok"
    if [[ -f /usr/include/hip/hip_runtime_api.h ]]; then
        "$CC" -fsyntax-only -I/usr/include -I"$here" "$here/layout_check.c"
        echo "hipDeviceProp_t layout matches /usr/include/hip: ok"
    fi
    exit 0
fi

out="${1:?usage: build.sh OUTDIR | --check}"
mkdir -p "$out"
libdirs=()
for d in "$CUDA_HOME/lib64" "$CUDA_HOME/lib64/stubs" /usr/lib/x86_64-linux-gnu /usr/lib64; do
    [[ -d "$d" ]] && libdirs+=(-L"$d")
done
"$CC" "${flags[@]}" -shared -o "$out/libamdhip64.so.5" "$here/hip_shim.c" \
    "${libdirs[@]}" -Wl,-rpath,"$CUDA_HOME/lib64" -lcuda -lnvrtc -lpthread \
    -Wl,--version-script="$here/hip_4.2.map" -Wl,-soname,libamdhip64.so.5
ln -sf libamdhip64.so.5 "$out/libamdhip64.so"
echo "$out/libamdhip64.so.5"
