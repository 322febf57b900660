// greta kernel prelude: what differs between HIP on AMD and CUDA on NVIDIA, in one place.
//
// Every kernel source in kernels/ is compiled at run time (hiprtc on AMD, NVRTC through the
// HIP-on-CUDA shim on NVIDIA) with this prelude prepended by the Rust side (src/backend/hip/source.rs).
// The kernels use only the HIP/CUDA common subset plus the macros below:
//   GRETA_WARP             lanes of a warp (NVIDIA: 32) or wavefront (AMD: 64, 32 on wave32 RDNA)
//   greta_shfl_xor(v, m)   butterfly shuffle within a warp
//   greta_neg_inf()        -inf without <math.h> (NVRTC has no host headers)
//   greta_round_half(x)    x rounded to binary16 precision (round to nearest even), returned as float:
//                          the f16 accumulation routes round every accumulator update with it, so the
//                          rounding is explicit and identical on both vendors (no __half arithmetic).
//
// Floating-point contraction is switched off by the compile options (-ffp-contract=off on hiprtc,
// --fmad=false on NVRTC), so `a * b + c` is two roundings, as on the CPU reference.
#pragma once

#if defined(__CUDACC__) && !defined(__HIP_PLATFORM_AMD__)
#define GRETA_NVIDIA 1
#define GRETA_WARP 32
__device__ __forceinline__ float greta_shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ int greta_shfl_xor_i(int v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
#else
#define GRETA_AMD 1
#if defined(__AMDGCN_WAVEFRONT_SIZE)
#define GRETA_WARP __AMDGCN_WAVEFRONT_SIZE
#else
#define GRETA_WARP 64
#endif
__device__ __forceinline__ float greta_shfl_xor(float v, int m) { return __shfl_xor(v, m); }
__device__ __forceinline__ int greta_shfl_xor_i(int v, int m) { return __shfl_xor(v, m); }
#endif

typedef unsigned int u32;

__device__ __forceinline__ float greta_neg_inf() { return __int_as_float(0xff800000); }

// Round a float to the nearest binary16 value (ties to even), keeping it in a float. Handles
// overflow (to +-inf), binary16 subnormals (quantum 2^-24) and passes inf/NaN through.
__device__ __forceinline__ float greta_round_half(float x) {
    u32 b = (u32)__float_as_int(x);
    u32 sign = b & 0x80000000u;
    u32 a = b & 0x7fffffffu;
    if (a >= 0x7f800000u) return x;                           // inf or NaN
    if (a >= 0x477ff000u) return __int_as_float((int)(sign | 0x7f800000u)); // >= 65520: overflows
    if (a < 0x38800000u) {                                     // below 2^-14: subnormal quantum 2^-24
        float q = __int_as_float(0x33800000);                  // 2^-24
        float y = __int_as_float((int)a) / q;                  // exact: power-of-two scaling
        float r = rintf(y);                                    // ties to even
        return __int_as_float((int)(sign | (u32)__float_as_int(r * q)));
    }
    // Normal: keep 10 of the 23 mantissa bits, round to nearest even on the 13 dropped ones.
    u32 lsb = (a >> 13) & 1u;
    a = (a + 0x0fffu + lsb) & ~0x1fffu;
    return __int_as_float((int)(sign | a));
}

// Sum of one value per lane over a warp by a fixed xor butterfly (offsets W/2, W/4, ..., 1). Float
// addition is commutative, so every lane ends with the same bits.
__device__ __forceinline__ float greta_warp_sum(float v) {
    for (int m = GRETA_WARP / 2; m > 0; m >>= 1) v += greta_shfl_xor(v, m);
    return v;
}

// The same tree with each partial sum rounded to binary16 (f16 accumulation routes).
__device__ __forceinline__ float greta_warp_sum_h(float v) {
    for (int m = GRETA_WARP / 2; m > 0; m >>= 1) v = greta_round_half(v + greta_shfl_xor(v, m));
    return v;
}

// Sum over a block of GRETA_BLOCK threads (a power of two) by a fixed shared-memory tree: thread t adds
// t + s for s = GRETA_BLOCK/2, ..., 1. `sh` holds GRETA_BLOCK floats. The result is returned to every
// thread. `half_acc` rounds every partial sum to binary16 (f16 routes).
#define GRETA_BLOCK 256
__device__ __forceinline__ float greta_block_sum(float v, float* sh, bool half_acc) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = GRETA_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) {
            float r = sh[t] + sh[t + s];
            sh[t] = half_acc ? greta_round_half(r) : r;
        }
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

// Maximum over a block (exact: the order of max does not matter, except for NaN, which never wins).
__device__ __forceinline__ float greta_block_max(float v, float* sh) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = GRETA_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s) {
            float a = sh[t], b = sh[t + s];
            sh[t] = (b > a || a != a) ? b : a;
        }
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}
