// RMSNorm: y = x * (1 / sqrtf(sum(x^2) / dim + eps)) * w, one block of GRETA_BLOCK threads per row.
// The sum of squares: thread t sums d = t, t+B, t+2B, ... in order, then greta_block_sum's fixed tree.
// sqrtf and the division are IEEE correctly rounded (no fast-math), as on the CPU.

extern "C" __global__ void rmsnorm_f32(const float* __restrict__ x, const float* __restrict__ w,
                                       float* __restrict__ y, u32 n, u32 dim, float eps) {
    __shared__ float sh[GRETA_BLOCK];
    u32 i = blockIdx.x;
    if (i >= n) return;  // uniform per block
    const float* r = x + (size_t)i * dim;
    float part = 0.0f;
    for (u32 d = threadIdx.x; d < dim; d += GRETA_BLOCK) part += r[d] * r[d];
    float ss = greta_block_sum(part, sh, false);
    float inv = 1.0f / sqrtf(ss / (float)dim + eps);
    for (u32 d = threadIdx.x; d < dim; d += GRETA_BLOCK) y[(size_t)i * dim + d] = r[d] * inv * w[d];
}
