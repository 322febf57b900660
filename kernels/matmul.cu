// Weight matmuls y[n, out] = x[n, in] . W[out, in]^T, f32 storage (weights dequantised on the host).
//
// Three routes, three documented summation orders:
//   gemv_f32            one warp per output element. Lane l sums k = l, l+W, l+2W, ... in order
//                       (acc += x*w, no FMA), then greta_warp_sum's xor butterfly. Grid (out/WPB, n).
//   gemm_invariant_f32  one warp per output column and up to INV_ROWS rows: the same per-row lane sums
//                       and the same butterfly as gemv, so every row is bit-identical to gemv's result
//                       for that row alone, for any n. The weight element is loaded once per group.
//   gemm_tiled_f32      16x16 output tiles, K staged through shared memory in TILE_K slices; each
//                       thread sums its output sequentially over k = 0..in-1. A different order from
//                       gemv on purpose (prefill vs decode, as in production engines).

#define MM_WPB 4        // warps per block for gemv / gemm_invariant
#define INV_ROWS 8      // rows per warp in gemm_invariant
#define TILE 16         // gemm_tiled output tile (TILE x TILE threads)
#define TILE_K 16       // gemm_tiled K slice

extern "C" __global__ void gemv_f32(const float* __restrict__ x, const float* __restrict__ w,
                                    float* __restrict__ y, u32 n, u32 in, u32 out) {
    u32 lane = threadIdx.x % GRETA_WARP;
    u32 o = blockIdx.x * MM_WPB + threadIdx.x / GRETA_WARP;
    u32 i = blockIdx.y;
    if (o >= out || i >= n) return;  // whole warps leave together: o is uniform within a warp
    const float* xr = x + (size_t)i * in;
    const float* wr = w + (size_t)o * in;
    float acc = 0.0f;
    for (u32 k = lane; k < in; k += GRETA_WARP) acc += xr[k] * wr[k];
    acc = greta_warp_sum(acc);
    if (lane == 0) y[(size_t)i * out + o] = acc;
}

extern "C" __global__ void gemm_invariant_f32(const float* __restrict__ x, const float* __restrict__ w,
                                              float* __restrict__ y, u32 n, u32 in, u32 out) {
    u32 lane = threadIdx.x % GRETA_WARP;
    u32 o = blockIdx.x * MM_WPB + threadIdx.x / GRETA_WARP;
    u32 i0 = blockIdx.y * INV_ROWS;
    if (o >= out || i0 >= n) return;
    u32 rows = n - i0 < INV_ROWS ? n - i0 : INV_ROWS;
    const float* wr = w + (size_t)o * in;
    float acc[INV_ROWS];
#pragma unroll
    for (int r = 0; r < INV_ROWS; r++) acc[r] = 0.0f;
    for (u32 k = lane; k < in; k += GRETA_WARP) {
        float wk = wr[k];
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

extern "C" __global__ void gemm_tiled_f32(const float* __restrict__ x, const float* __restrict__ w,
                                          float* __restrict__ y, u32 n, u32 in, u32 out) {
    __shared__ float xs[TILE][TILE_K + 1];
    __shared__ float ws[TILE][TILE_K + 1];
    u32 tx = threadIdx.x % TILE, ty = threadIdx.x / TILE;
    u32 o = blockIdx.x * TILE + tx;
    u32 i = blockIdx.y * TILE + ty;
    float acc = 0.0f;
    for (u32 k0 = 0; k0 < in; k0 += TILE_K) {
        // Thread (ty, tx) loads x[row ty, k0+tx] and W[col ty, k0+tx]; zeros past the edges.
        u32 xr = blockIdx.y * TILE + ty, wc = blockIdx.x * TILE + ty, kk = k0 + tx;
        xs[ty][tx] = (xr < n && kk < in) ? x[(size_t)xr * in + kk] : 0.0f;
        ws[ty][tx] = (wc < out && kk < in) ? w[(size_t)wc * in + kk] : 0.0f;
        __syncthreads();
        u32 kn = in - k0 < TILE_K ? in - k0 : TILE_K;
        for (u32 k = 0; k < kn; k++) acc += xs[ty][k] * ws[tx][k];
        __syncthreads();
    }
    if (i < n && o < out) y[(size_t)i * out + o] = acc;
}
