// gemm_mma: the prefill matmul of production engines, on matrix cores. Three launches:
//   mma_x_f16      x [n, in] f32 -> xh [np, kp] binary16 (round to nearest even), zero-padded;
//   mma_w_f16      W (GGUF format fmt, rb bytes a row) -> wh [op, kp] binary16: each element dequantised
//                  with the host's formula (prelude.h greta_wload), then rounded to nearest even;
//   gemm_mma       y [n, out] = xh . wh^T, f32 accumulation on the matrix unit:
//                    NVIDIA  mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (sm_80 and later)
//                    AMD     __builtin_amdgcn_mfma_f32_16x16x16f16 (CDNA: MI100/MI200/MI300)
// (np, op: n and out rounded up to MMA_BM / MMA_BN; kp: in rounded up to MMA_BK; padding is zeros.)
// Order: every output element starts at 0 and takes the k-slices 0..15, 16..31, ... in order, one
// matrix instruction each; how the unit adds the 16 products of a slice to the accumulator is the
// hardware's (not IEEE per addition, and not documented), so the CPU's emulation of this route is
// close but not bit-exact. Each output depends only on its own row of x and column of W, never on how
// many rows the launch has or where the row sits in a tile: the route is batch-invariant, so a decode
// step on gemm_mma gives the bits of the same row in prefill.
//
// Block tile MMA_BM x MMA_BN (rows x outputs), K staged through shared memory in MMA_BK slices with
// 16-byte loads; MMA_THREADS threads.

#define MMA_BM 128
#define MMA_BN 128
#define MMA_BK 32
#define MMA_PAD 8       // halves of padding per shared row (bank-conflict-free fragment loads)
#define MMA_THREADS 256
#define MMA_CVT_THREADS 256

typedef unsigned short u16;

__device__ __forceinline__ u16 mma_f16_bits(float v) {
#if defined(GRETA_NVIDIA)
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
#else
    _Float16 h = (_Float16)v;
    return __builtin_bit_cast(u16, h);
#endif
}

// Grid (np, kp / MMA_CVT_THREADS rounded up): rows in x, which has no 65535 limit.
extern "C" __global__ void mma_x_f16(const float* __restrict__ x, u16* __restrict__ xh, u32 n, u32 in, u32 kp) {
    u32 k = blockIdx.y * MMA_CVT_THREADS + threadIdx.x, r = blockIdx.x;
    if (k >= kp) return;
    xh[(size_t)r * kp + k] = (r < n && k < in) ? mma_f16_bits(x[(size_t)r * in + k]) : (u16)0;
}

template <int F>
__device__ __forceinline__ void mma_w_body(const u8* __restrict__ w, u16* __restrict__ wh, u32 out, u32 in, u32 kp,
                                           u32 rb) {
    u32 k = blockIdx.y * MMA_CVT_THREADS + threadIdx.x, o = blockIdx.x;
    if (k >= kp) return;
    wh[(size_t)o * kp + k] = (o < out && k < in) ? mma_f16_bits(greta_wload<F>(w + (size_t)o * rb, k)) : (u16)0;
}

// Grid (op, kp / MMA_CVT_THREADS rounded up), MMA_CVT_THREADS threads.
extern "C" __global__ void mma_w_f16(const u8* __restrict__ w, u16* __restrict__ wh, u32 out, u32 in, u32 kp,
                                     u32 fmt, u32 rb) {
#define BODY(F) mma_w_body<F>(w, wh, out, in, kp, rb)
    GRETA_W_DISPATCH(fmt, BODY)
#undef BODY
}

__device__ __forceinline__ u32 mma_pair(const u16* p) { return *(const u32*)p; }

// Grid (op / MMA_BN, np / MMA_BM), MMA_THREADS threads.
extern "C" __global__ void gemm_mma(const u16* __restrict__ xh, const u16* __restrict__ wh, float* __restrict__ y,
                                    u32 n, u32 out, u32 kp) {
    __shared__ __align__(16) u16 as[MMA_BM][MMA_BK + MMA_PAD];
    __shared__ __align__(16) u16 bs[MMA_BN][MMA_BK + MMA_PAD];
    u32 row0 = blockIdx.y * MMA_BM, col0 = blockIdx.x * MMA_BN;
    // Staging: each row of a slice is MMA_BK halves = 4 x 16 bytes; (MMA_BM + MMA_BN) * 4 pieces.
#define MMA_STAGE(k0)                                                                            \
    for (u32 idx = threadIdx.x; idx < MMA_BM * 4; idx += MMA_THREADS) {                          \
        u32 r = idx / 4, c = (idx % 4) * 8;                                                      \
        *(uint4*)&as[r][c] = *(const uint4*)&xh[(size_t)(row0 + r) * kp + (k0) + c];            \
        *(uint4*)&bs[r][c] = *(const uint4*)&wh[(size_t)(col0 + r) * kp + (k0) + c];            \
    }
#if defined(GRETA_NVIDIA)
    // 8 warps as 4 (rows) x 2 (outputs); warp wp owns 32 rows x 64 outputs: 2 x 8 fragments of m16 x n8.
    // Lane = 4 * g + t (PTX ISA, "Matrix Fragments for mma.m16n8k16").
    u32 wp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    u32 wr = (wp / 2) * 32, wc = (wp % 2) * 64;
    float acc[2][8][4];
#pragma unroll
    for (int a = 0; a < 2; a++)
#pragma unroll
        for (int b = 0; b < 8; b++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[a][b][c] = 0.0f;
    for (u32 k0 = 0; k0 < kp; k0 += MMA_BK) {
        MMA_STAGE(k0)
        __syncthreads();
#pragma unroll
        for (u32 kk = 0; kk < MMA_BK; kk += 16) {
            u32 af[2][4], bf[8][2];
#pragma unroll
            for (int mi = 0; mi < 2; mi++) {
                u32 r = wr + mi * 16 + g;
                af[mi][0] = mma_pair(&as[r][kk + 2 * t]);
                af[mi][1] = mma_pair(&as[r + 8][kk + 2 * t]);
                af[mi][2] = mma_pair(&as[r][kk + 2 * t + 8]);
                af[mi][3] = mma_pair(&as[r + 8][kk + 2 * t + 8]);
            }
#pragma unroll
            for (int ni = 0; ni < 8; ni++) {
                u32 c = wc + ni * 8 + g;
                bf[ni][0] = mma_pair(&bs[c][kk + 2 * t]);
                bf[ni][1] = mma_pair(&bs[c][kk + 2 * t + 8]);
            }
#pragma unroll
            for (int mi = 0; mi < 2; mi++)
#pragma unroll
                for (int ni = 0; ni < 8; ni++) {
                    float* d = acc[mi][ni];
                    asm volatile(
                        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                        "{%8,%9}, {%0,%1,%2,%3};"
                        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                        : "r"(af[mi][0]), "r"(af[mi][1]), "r"(af[mi][2]), "r"(af[mi][3]), "r"(bf[ni][0]),
                          "r"(bf[ni][1]));
                }
        }
        __syncthreads();
    }
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int c = 0; c < 4; c++) {
                u32 r = row0 + wr + mi * 16 + g + (c >= 2 ? 8 : 0);
                u32 o = col0 + wc + ni * 8 + 2 * t + (c & 1);
                if (r < n && o < out) y[(size_t)r * out + o] = acc[mi][ni][c];
            }
#else
    // AMD (wave64): 4 waves; wave wv owns rows wv * 32 .. +32 and all 128 outputs: 2 x 8 tiles of 16 x 16.
    // v_mfma_f32_16x16x16f16 operand layout: A[i][k] in lane i + 16 * (k / 4), item k % 4; B[k][j] in
    // lane j + 16 * (k / 4), item k % 4; D[i][j] in lane j + 16 * (i / 4), item i % 4.
    typedef _Float16 half4 __attribute__((ext_vector_type(4)));
    typedef float float4_ __attribute__((ext_vector_type(4)));
    u32 wv = threadIdx.x / 64, lane = threadIdx.x % 64, li = lane % 16, lk = (lane / 16) * 4;
    float4_ acc[2][8];
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 8; b++) acc[a][b] = (float4_){0.0f, 0.0f, 0.0f, 0.0f};
    for (u32 k0 = 0; k0 < kp; k0 += MMA_BK) {
        MMA_STAGE(k0)
        __syncthreads();
        for (u32 kk = 0; kk < MMA_BK; kk += 16) {
            half4 af[2], bf[8];
            for (int mi = 0; mi < 2; mi++)
                for (int e = 0; e < 4; e++)
                    af[mi][e] = __builtin_bit_cast(_Float16, as[wv * 32 + mi * 16 + li][kk + lk + e]);
            for (int ni = 0; ni < 8; ni++)
                for (int e = 0; e < 4; e++)
                    bf[ni][e] = __builtin_bit_cast(_Float16, bs[ni * 16 + li][kk + lk + e]);
            for (int mi = 0; mi < 2; mi++)
                for (int ni = 0; ni < 8; ni++)
                    acc[mi][ni] = __builtin_amdgcn_mfma_f32_16x16x16f16(af[mi], bf[ni], acc[mi][ni], 0, 0, 0);
        }
        __syncthreads();
    }
    for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 8; ni++)
            for (int e = 0; e < 4; e++) {
                u32 r = row0 + wv * 32 + mi * 16 + lk + e;
                u32 o = col0 + ni * 16 + li;
                if (r < n && o < out) y[(size_t)r * out + o] = acc[mi][ni][e];
            }
#endif
#undef MMA_STAGE
}
