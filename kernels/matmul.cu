// Weight matmuls y[n, out] = x[n, in] . W[out, in]^T. x is f32; W stays in its GGUF format on the device
// (fmt: GRETA_W_*, rb: bytes per weight row) and each element is dequantised in the kernel by
// greta_wload, with the host's formula (prelude.h). The summation orders below do not depend on the
// format, so every route gives the same bits on blocks as on host-dequantised f32 weights.
//
// Three routes, three documented summation orders:
//   gemv            one warp per output element. Lane l sums k = l, l+W, l+2W, ... in order
//                   (acc += x*w, no FMA), then greta_warp_sum's xor butterfly. Grid (out/WPB, n).
//   gemm_invariant  one warp per output column and up to INV_ROWS rows: the same per-row lane sums
//                   and the same butterfly as gemv, so every row is bit-identical to gemv's result
//                   for that row alone, for any n. The weight element is loaded once per group.
//   gemm_tiled      16x16 output tiles, K staged through shared memory in TILE_K slices; each
//                   thread sums its output sequentially over k = 0..in-1. A different order from
//                   gemv on purpose (prefill vs decode, as in production engines).

#define MM_WPB 4        // warps per block for gemv / gemm_invariant
#define INV_ROWS 8      // rows per warp in gemm_invariant
#define TILE 16         // gemm_tiled output tile (TILE x TILE threads)
#define TILE_K 16       // gemm_tiled K slice

template <int F>
__device__ __forceinline__ void gemv_body(const float* __restrict__ x, const u8* __restrict__ w,
                                          float* __restrict__ y, u32 n, u32 in, u32 out, u32 rb) {
    u32 lane = threadIdx.x % GRETA_WARP;
    u32 o = blockIdx.x * MM_WPB + threadIdx.x / GRETA_WARP;
    u32 i = blockIdx.y;
    if (o >= out || i >= n) return;  // whole warps leave together: o is uniform within a warp
    const float* xr = x + (size_t)i * in;
    const u8* wr = w + (size_t)o * rb;
    float acc = 0.0f;
    for (u32 k = lane; k < in; k += GRETA_WARP) acc += xr[k] * greta_wload<F>(wr, k);
    acc = greta_warp_sum(acc);
    if (lane == 0) y[(size_t)i * out + o] = acc;
}

extern "C" __global__ void gemv(const float* __restrict__ x, const u8* __restrict__ w,
                                float* __restrict__ y, u32 n, u32 in, u32 out, u32 fmt, u32 rb) {
#define BODY(F) gemv_body<F>(x, w, y, n, in, out, rb)
    GRETA_W_DISPATCH(fmt, BODY)
#undef BODY
}

template <int F>
__device__ __forceinline__ void gemm_invariant_body(const float* __restrict__ x, const u8* __restrict__ w,
                                                    float* __restrict__ y, u32 n, u32 in, u32 out, u32 rb) {
    u32 lane = threadIdx.x % GRETA_WARP;
    u32 o = blockIdx.x * MM_WPB + threadIdx.x / GRETA_WARP;
    u32 i0 = blockIdx.y * INV_ROWS;
    if (o >= out || i0 >= n) return;
    u32 rows = n - i0 < INV_ROWS ? n - i0 : INV_ROWS;
    const u8* wr = w + (size_t)o * rb;
    float acc[INV_ROWS];
#pragma unroll
    for (int r = 0; r < INV_ROWS; r++) acc[r] = 0.0f;
    for (u32 k = lane; k < in; k += GRETA_WARP) {
        float wk = greta_wload<F>(wr, k);
#pragma unroll
        for (int r = 0; r < INV_ROWS; r++)
            if ((u32)r < rows) acc[r] += x[(size_t)(i0 + r) * in + k] * wk;
    }
#pragma unroll
    for (int r = 0; r < INV_ROWS; r++) {
        float s = greta_warp_sum(acc[r]);
        if (lane == 0 && (u32)r < rows) y[(size_t)(i0 + r) * out + o] = s;
    }
}

extern "C" __global__ void gemm_invariant(const float* __restrict__ x, const u8* __restrict__ w,
                                          float* __restrict__ y, u32 n, u32 in, u32 out, u32 fmt, u32 rb) {
#define BODY(F) gemm_invariant_body<F>(x, w, y, n, in, out, rb)
    GRETA_W_DISPATCH(fmt, BODY)
#undef BODY
}

template <int F>
__device__ __forceinline__ void gemm_tiled_body(const float* __restrict__ x, const u8* __restrict__ w,
                                                float* __restrict__ y, u32 n, u32 in, u32 out, u32 rb,
                                                float (*xs)[TILE_K + 1], float (*ws)[TILE_K + 1]) {
    u32 tx = threadIdx.x % TILE, ty = threadIdx.x / TILE;
    u32 o = blockIdx.x * TILE + tx;
    u32 i = blockIdx.y * TILE + ty;
    float acc = 0.0f;
    for (u32 k0 = 0; k0 < in; k0 += TILE_K) {
        // Thread (ty, tx) loads x[row ty, k0+tx] and W[col ty, k0+tx]; zeros past the edges.
        u32 xr = blockIdx.y * TILE + ty, wc = blockIdx.x * TILE + ty, kk = k0 + tx;
        xs[ty][tx] = (xr < n && kk < in) ? x[(size_t)xr * in + kk] : 0.0f;
        ws[ty][tx] = (wc < out && kk < in) ? greta_wload<F>(w + (size_t)wc * rb, kk) : 0.0f;
        __syncthreads();
        u32 kn = in - k0 < TILE_K ? in - k0 : TILE_K;
        for (u32 k = 0; k < kn; k++) acc += xs[ty][k] * ws[tx][k];
        __syncthreads();
    }
    if (i < n && o < out) y[(size_t)i * out + o] = acc;
}

extern "C" __global__ void gemm_tiled(const float* __restrict__ x, const u8* __restrict__ w,
                                      float* __restrict__ y, u32 n, u32 in, u32 out, u32 fmt, u32 rb) {
    // Declared here, not in the templated body, so the eight formats share one allocation.
    __shared__ float xs[TILE][TILE_K + 1];
    __shared__ float ws[TILE][TILE_K + 1];
#define BODY(F) gemm_tiled_body<F>(x, w, y, n, in, out, rb, xs, ws)
    GRETA_W_DISPATCH(fmt, BODY)
#undef BODY
}
