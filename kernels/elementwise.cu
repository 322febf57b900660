// The other `direct` stages: embedding rows, residual add, SwiGLU, argmax. Each output element depends
// on its own row only, so every kernel here is batch-invariant by construction.

#define EW_THREADS 256

// y[i, :] = table[ids[i], :], the table in its GGUF format (fmt, rb bytes a row; see prelude.h), each
// element dequantised with the host's formula. The ids are range-checked on the host before the launch.
template <int F>
__device__ __forceinline__ void embed_body(const int* __restrict__ ids, const u8* __restrict__ table,
                                           float* __restrict__ y, u32 n, u32 dim, u32 rb) {
    u32 d = blockIdx.x * EW_THREADS + threadIdx.x;
    u32 i = blockIdx.y;
    if (i >= n || d >= dim) return;
    y[(size_t)i * dim + d] = greta_wload<F>(table + (size_t)ids[i] * rb, d);
}

extern "C" __global__ void embed(const int* __restrict__ ids, const u8* __restrict__ table,
                                 float* __restrict__ y, u32 n, u32 dim, u32 fmt, u32 rb) {
#define BODY(F) embed_body<F>(ids, table, y, n, dim, rb)
    GRETA_W_DISPATCH(fmt, BODY)
#undef BODY
}

// y = a + b, elementwise over `count` floats.
extern "C" __global__ void add_f32(const float* __restrict__ a, const float* __restrict__ b,
                                   float* __restrict__ y, u32 count) {
    size_t e = (size_t)blockIdx.x * EW_THREADS + threadIdx.x;
    if (e < count) y[e] = a[e] + b[e];
}

// y = g / (1 + expf(-g)) * u, elementwise (the CPU's order of operations).
extern "C" __global__ void swiglu_f32(const float* __restrict__ g, const float* __restrict__ u,
                                      float* __restrict__ y, u32 count) {
    size_t e = (size_t)blockIdx.x * EW_THREADS + threadIdx.x;
    if (e < count) {
        float gv = g[e];
        y[e] = gv / (1.0f + expf(-gv)) * u[e];
    }
}

// True when candidate (bv, bi) beats (av, ai): a number beats NaN, a larger value wins, equal values
// go to the lower index. This makes the tree below return the first index of the maximum, as the CPU
// reference's sequential scan does (and index 0 when the whole row is NaN).
__device__ __forceinline__ bool argmax_beats(float bv, int bi, float av, int ai) {
    if (bi < 0) return false;
    if (ai < 0) return true;
    bool an = av != av, bn = bv != bv;
    if (an != bn) return an;
    if (!an && bv != av) return bv > av;
    return bi < ai;
}

// ids[i] = first index of the maximum of x[i, :]. One block of GRETA_BLOCK threads per row.
extern "C" __global__ void argmax_f32(const float* __restrict__ x, int* __restrict__ ids, u32 n, u32 cols) {
    __shared__ float sv[GRETA_BLOCK];
    __shared__ int si[GRETA_BLOCK];
    u32 i = blockIdx.x, t = threadIdx.x;
    if (i >= n) return;
    const float* r = x + (size_t)i * cols;
    float bv = 0.0f;
    int bi = -1;
    for (u32 j = t; j < cols; j += GRETA_BLOCK)
        if (argmax_beats(r[j], (int)j, bv, bi)) { bv = r[j]; bi = (int)j; }
    sv[t] = bv;
    si[t] = bi;
    __syncthreads();
    for (u32 s = GRETA_BLOCK / 2; s > 0; s >>= 1) {
        if (t < s && argmax_beats(sv[t + s], si[t + s], sv[t], si[t])) {
            sv[t] = sv[t + s];
            si[t] = si[t + s];
        }
        __syncthreads();
    }
    if (t == 0) ids[i] = si[0] < 0 ? 0 : si[0];
}
