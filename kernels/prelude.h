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

// ---- Weights in their GGUF block formats (read in the kernel, never dequantised on the host) ----
//
// greta_wload<F>(row, k) is element k of a weight row stored in format F, computed with exactly the
// formula of the host's dequantiser (src/model/quant.rs, itself ggml's): every f16 scale widened to f32
// exactly, one f32 rounding per operation in the same order. Contraction is off, so the value equals the
// host's bit for bit, and a matmul route reading blocks gives the bits it gave on host-dequantised f32.
// Bytes are read one at a time (GGUF rows are not 4-byte aligned inside a block).
#define GRETA_W_F32 0
#define GRETA_W_F16 1
#define GRETA_W_BF16 2
#define GRETA_W_Q8_0 3
#define GRETA_W_Q4_0 4
#define GRETA_W_Q4_1 5
#define GRETA_W_Q4_K 6
#define GRETA_W_Q6_K 7
#define GRETA_W_Q5_0 8
#define GRETA_W_Q5_1 9
#define GRETA_W_Q2_K 10
#define GRETA_W_Q3_K 11
#define GRETA_W_Q5_K 12
#define GRETA_W_IQ4_NL 13
#define GRETA_W_IQ4_XS 14

typedef unsigned char u8;

// f16 bits to f32, the host's branch-free formula: the 15 magnitude bits placed at f32's
// exponent/mantissa and multiplied by 2^112 (exact), infinities and NaN payloads patched in.
__device__ __forceinline__ float greta_f16(u32 h) {
    u32 mag = h & 0x7fffu;
    u32 sign = (h & 0x8000u) << 16;
    u32 fin = (u32)__float_as_int(__int_as_float((int)(mag << 13)) * __int_as_float(0x77800000));
    u32 special = 0x7f800000u | ((mag & 0x03ffu) << 13);
    return __int_as_float((int)(sign | (mag >= 0x7c00u ? special : fin)));
}
__device__ __forceinline__ float greta_f16_at(const u8* b) { return greta_f16((u32)b[0] | ((u32)b[1] << 8)); }

// The (scale, min) pair of sub-block g (0..7) of a Q4_K super-block's 12 scale bytes s.
__device__ __forceinline__ void greta_q4k_sm(const u8* s, u32 g, u32* sc, u32* mn) {
    if (g < 4) {
        *sc = s[g] & 0x3fu;
        *mn = s[g + 4] & 0x3fu;
    } else {
        u32 j = g - 4;
        *sc = (s[j + 8] & 0x0fu) | ((s[j] >> 2) & 0x30u);
        *mn = (s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30u);
    }
}

// IQ4_NL's (and IQ4_XS's) non-linear 4-bit code book (kvalues_iq4nl in ggml-common.h; quant.rs's
// IQ4NL_VALUES).
__constant__ signed char greta_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// The fifth bit of element j (0..31) of a Q5_0/Q5_1 block: bit j of the little-endian u32 at qh.
__device__ __forceinline__ u32 greta_q5_hbit(const u8* qh, u32 j) { return (qh[j >> 3] >> (j & 7)) & 1u; }

template <int F>
__device__ __forceinline__ float greta_wload(const u8* __restrict__ row, u32 k) {
    if (F == GRETA_W_F32) {
        const u8* p = row + (size_t)k * 4;
        return __int_as_float((int)((u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24)));
    } else if (F == GRETA_W_F16) {
        return greta_f16_at(row + (size_t)k * 2);
    } else if (F == GRETA_W_BF16) {
        const u8* p = row + (size_t)k * 2;
        return __int_as_float((int)(((u32)p[0] | ((u32)p[1] << 8)) << 16));
    } else if (F == GRETA_W_Q8_0) {
        const u8* b = row + (size_t)(k >> 5) * 34;
        float d = greta_f16_at(b);
        return (float)(signed char)b[2 + (k & 31)] * d;
    } else if (F == GRETA_W_Q4_0) {
        const u8* b = row + (size_t)(k >> 5) * 18;
        u32 j = k & 31;
        float d = greta_f16_at(b);
        int q = j < 16 ? (int)(b[2 + j] & 0x0f) - 8 : (int)(b[2 + j - 16] >> 4) - 8;
        return d * (float)q;
    } else if (F == GRETA_W_Q4_1) {
        const u8* b = row + (size_t)(k >> 5) * 20;
        u32 j = k & 31;
        float d = greta_f16_at(b), m = greta_f16_at(b + 2);
        u32 q = j < 16 ? (b[4 + j] & 0x0fu) : (b[4 + j - 16] >> 4);
        return d * (float)q + m;
    } else if (F == GRETA_W_Q4_K) {
        const u8* b = row + (size_t)(k >> 8) * 144;
        u32 e = k & 255, g = e >> 5, l = e & 31;
        float d = greta_f16_at(b), dmin = greta_f16_at(b + 2);
        u32 sc, mn;
        greta_q4k_sm(b + 4, g, &sc, &mn);
        float ds = d * (float)sc;
        float dm = dmin * (float)mn;
        u32 q = (b[16 + (g >> 1) * 32 + l] >> (4 * (g & 1))) & 0x0fu;
        return ds * (float)q - dm;
    } else if (F == GRETA_W_Q6_K) {
        const u8* b = row + (size_t)(k >> 8) * 210;
        u32 e = k & 255, h = e >> 7, kk = (e >> 5) & 3, l = e & 31;
        u32 lo = (b[64 * h + 32 * (kk & 1) + l] >> (4 * (kk >> 1))) & 0x0fu;
        u32 hi = (b[128 + 32 * h + l] >> (2 * kk)) & 0x03u;
        int q = (int)(lo | (hi << 4)) - 32;
        float d = greta_f16_at(b + 208);
        float ds = d * (float)(signed char)b[192 + (e >> 4)];
        return ds * (float)q;
    } else if (F == GRETA_W_Q5_0) {
        const u8* b = row + (size_t)(k >> 5) * 22;
        u32 j = k & 31;
        float d = greta_f16_at(b);
        u32 lo = j < 16 ? (b[6 + j] & 0x0fu) : (b[6 + j - 16] >> 4);
        int q = (int)(lo | (greta_q5_hbit(b + 2, j) << 4)) - 16;
        return d * (float)q;
    } else if (F == GRETA_W_Q5_1) {
        const u8* b = row + (size_t)(k >> 5) * 24;
        u32 j = k & 31;
        float d = greta_f16_at(b), m = greta_f16_at(b + 2);
        u32 lo = j < 16 ? (b[8 + j] & 0x0fu) : (b[8 + j - 16] >> 4);
        u32 q = lo | (greta_q5_hbit(b + 4, j) << 4);
        return d * (float)q + m;
    } else if (F == GRETA_W_Q2_K) {
        // [16 scales: low nibble scale, high nibble min][64 qs][d f16][dmin f16]
        const u8* b = row + (size_t)(k >> 8) * 84;
        u32 e = k & 255, h = e >> 7, s = (e >> 5) & 3, l = e & 31;
        u32 sc = b[e >> 4];
        float d = greta_f16_at(b + 80), dmin = greta_f16_at(b + 82);
        float dl = d * (float)(sc & 0x0fu);
        float ml = dmin * (float)(sc >> 4);
        u32 q = (b[16 + 32 * h + l] >> (2 * s)) & 3u;
        return dl * (float)q - ml;
    } else if (F == GRETA_W_Q3_K) {
        // [32 hmask][64 qs][12 scale bytes][d f16]
        const u8* b = row + (size_t)(k >> 8) * 110;
        u32 e = k & 255, h = e >> 7, s = (e >> 5) & 3, l = e & 31, i = e >> 4;
        u32 slo = (b[96 + (i & 7)] >> (4 * (i >> 3))) & 0x0fu;
        u32 shi = (b[104 + (i & 3)] >> (2 * (i >> 2))) & 0x03u;
        int sc = (int)(slo | (shi << 4)) - 32;
        int lo = (int)((b[32 + 32 * h + l] >> (2 * s)) & 3u);
        int hb = (int)((b[l] >> (e >> 5)) & 1u);
        int q = lo - ((hb ^ 1) << 2);
        float d = greta_f16_at(b + 108);
        float dl = d * (float)sc;
        return dl * (float)q;
    } else if (F == GRETA_W_Q5_K) {
        // [d f16][dmin f16][12 scale bytes as Q4_K][32 qh][128 qs as Q4_K]
        const u8* b = row + (size_t)(k >> 8) * 176;
        u32 e = k & 255, g = e >> 5, l = e & 31;
        float d = greta_f16_at(b), dmin = greta_f16_at(b + 2);
        u32 sc, mn;
        greta_q4k_sm(b + 4, g, &sc, &mn);
        float ds = d * (float)sc;
        float dm = dmin * (float)mn;
        u32 q = ((b[48 + (g >> 1) * 32 + l] >> (4 * (g & 1))) & 0x0fu) | (((b[16 + l] >> g) & 1u) << 4);
        return ds * (float)q - dm;
    } else if (F == GRETA_W_IQ4_NL) {
        const u8* b = row + (size_t)(k >> 5) * 18;
        u32 j = k & 31;
        float d = greta_f16_at(b);
        u32 n = j < 16 ? (b[2 + j] & 0x0fu) : (b[2 + j - 16] >> 4);
        return d * (float)greta_iq4nl[n];
    } else if (F == GRETA_W_IQ4_XS) {
        // [d f16][scales_h u16][4 bytes scales_l][8 groups of 16 bytes, each laid out as IQ4_NL's]
        const u8* b = row + (size_t)(k >> 8) * 136;
        u32 e = k & 255, g = e >> 5, j = e & 31;
        float d = greta_f16_at(b);
        u32 sh = (u32)b[2] | ((u32)b[3] << 8);
        u32 ls = ((b[4 + (g >> 1)] >> (4 * (g & 1))) & 0x0fu) | (((sh >> (2 * g)) & 3u) << 4);
        float dl = d * (float)((int)ls - 32);
        const u8* qs = b + 8 + 16 * g;
        u32 n = j < 16 ? (qs[j] & 0x0fu) : (qs[j - 16] >> 4);
        return dl * (float)greta_iq4nl[n];
    }
    return 0.0f;  // not reached: GRETA_W_DISPATCH instantiates only the formats above
}

// Dispatches a templated body over the weight format `fmt` (uniform across the launch).
#define GRETA_W_DISPATCH(fmt, BODY)                       \
    switch (fmt) {                                        \
        case GRETA_W_F32: BODY(GRETA_W_F32); break;       \
        case GRETA_W_F16: BODY(GRETA_W_F16); break;       \
        case GRETA_W_BF16: BODY(GRETA_W_BF16); break;     \
        case GRETA_W_Q8_0: BODY(GRETA_W_Q8_0); break;     \
        case GRETA_W_Q4_0: BODY(GRETA_W_Q4_0); break;     \
        case GRETA_W_Q4_1: BODY(GRETA_W_Q4_1); break;     \
        case GRETA_W_Q4_K: BODY(GRETA_W_Q4_K); break;     \
        case GRETA_W_Q6_K: BODY(GRETA_W_Q6_K); break;     \
        case GRETA_W_Q5_0: BODY(GRETA_W_Q5_0); break;     \
        case GRETA_W_Q5_1: BODY(GRETA_W_Q5_1); break;     \
        case GRETA_W_Q2_K: BODY(GRETA_W_Q2_K); break;     \
        case GRETA_W_Q3_K: BODY(GRETA_W_Q3_K); break;     \
        case GRETA_W_Q5_K: BODY(GRETA_W_Q5_K); break;     \
        case GRETA_W_IQ4_NL: BODY(GRETA_W_IQ4_NL); break; \
        case GRETA_W_IQ4_XS: BODY(GRETA_W_IQ4_XS); break; \
        default: break;                                   \
    }

// Sum over 32 consecutive lanes by the xor butterfly 16, 8, 4, 2, 1: the same order on a 32-lane warp
// and on each half of a 64-lane wavefront (the engine-style routes use 32 lanes per output everywhere,
// so their order does not depend on the vendor, and the CPU emulates it exactly).
__device__ __forceinline__ float greta_sum32(float v) {
    for (int m = 16; m > 0; m >>= 1) v += greta_shfl_xor(v, m);
    return v;
}
__device__ __forceinline__ int greta_sum32_i(int v) {
    for (int m = 16; m > 0; m >>= 1) v += greta_shfl_xor_i(v, m);
    return v;
}
// Four signed 8-bit products summed into c (exact integer arithmetic: the same result on every path).
__device__ __forceinline__ int greta_dp4a(int a, int b, int c) {
#if defined(GRETA_NVIDIA)
    return __dp4a(a, b, c);
#else
    return c + (int)(signed char)a * (int)(signed char)b + (int)(signed char)(a >> 8) * (int)(signed char)(b >> 8) +
           (int)(signed char)(a >> 16) * (int)(signed char)(b >> 16) + (int)(signed char)(a >> 24) * (int)(signed char)(b >> 24);
#endif
}

__device__ __forceinline__ float greta_max32(float v) {
    for (int m = 16; m > 0; m >>= 1) v = fmaxf(v, greta_shfl_xor(v, m));
    return v;
}
