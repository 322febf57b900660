// Attention, f32 storage, on two routes and two accumulation precisions.
//
// manual route (three launches, each row independent of the others: batch-invariant):
//   qk_*       scores[h, i, j] = scale * (q[i, h, :] . K[j, kh, :]) for j <= pos+i, else -inf.
//              One warp per score: lane-strided partial sums then greta_warp_sum's butterfly.
//   softmax_*  one block per row: max (exact), e_j = expf(s_j - max) (masked: exactly 0), the row sum
//              by per-thread strided partial sums then greta_block_sum's fixed tree, p_j = e_j * (1/sum).
//   pv_*       o[i, h, d] = sum over j = 0..pos+i, in order, of p[h, i, j] * V[j, kh, d]: one thread per
//              output element, the CPU reference's order.
// fused route (one launch, flash-decoding): one block per (row i, head h); keys in blocks of kv_block:
//   block scores by warps (as qk), block max, e_j = expf(s_j - bm), block sum in key order, block
//   accumulator per d in key order, merged into the running (m, l, acc) with rescaling exactly as the
//   CPU reference's fused route; out = acc * (1/l).
// The fused route also runs split (attn_part + attn_merge, same order, same bits; used when few
//   (row, head) blocks would leave the device idle, i.e. decode): the loop body above depends on the
//   running (m, l, acc) only in its last step, so attn_part computes each key block's (block max, block
//   sum, block accumulator) in its own thread block, exactly as that body does, and attn_merge folds them
//   in key-block order with the same rescaling, each thread redoing the (m, l) chain for its d.
// Precision: *_f32 accumulates in f32; *_f16 rounds the inputs of every product and every accumulator
// update to binary16 (greta_round_half), i.e. half accumulation emulated bit-exactly in f32 registers.
// Grouped-query attention: head h reads kv head h / (H / Hk).

template <bool H>
__device__ __forceinline__ float acc_add(float acc, float v) {
    return H ? greta_round_half(acc + v) : acc + v;
}
template <bool H>
__device__ __forceinline__ float prod(float a, float b) {
    return H ? greta_round_half(a) * greta_round_half(b) : a * b;  // a product of halves is exact in f32
}

template <bool H>
__device__ __forceinline__ float warp_dot(const float* a, const float* b, u32 len) {
    u32 lane = threadIdx.x % GRETA_WARP;
    float acc = 0.0f;
    for (u32 d = lane; d < len; d += GRETA_WARP) acc = acc_add<H>(acc, prod<H>(a[d], b[d]));
    return H ? greta_warp_sum_h(acc) : greta_warp_sum(acc);
}

#define ATT_WPB 4  // warps per block in qk

template <bool H>
__device__ void qk(const float* q, const float* k, float* s, u32 n, u32 ctx, u32 nh, u32 nkv, u32 hd,
                   u32 pos, float scale) {
    u32 j = blockIdx.x * ATT_WPB + threadIdx.x / GRETA_WARP;
    u32 i = blockIdx.y, h = blockIdx.z;
    if (j >= ctx) return;  // uniform per warp
    u32 kh = h / (nh / nkv);
    float* out = s + ((size_t)h * n + i) * ctx + j;
    if (j > pos + i) {
        if (threadIdx.x % GRETA_WARP == 0) *out = greta_neg_inf();
        return;
    }
    float dot = warp_dot<H>(q + (size_t)i * nh * hd + h * hd, k + (size_t)j * nkv * hd + kh * hd, hd);
    if (threadIdx.x % GRETA_WARP == 0) *out = dot * scale;
}

extern "C" __global__ void qk_f32(const float* q, const float* k, float* s, u32 n, u32 ctx, u32 nh,
                                  u32 nkv, u32 hd, u32 pos, float scale) {
    qk<false>(q, k, s, n, ctx, nh, nkv, hd, pos, scale);
}
extern "C" __global__ void qk_f16(const float* q, const float* k, float* s, u32 n, u32 ctx, u32 nh,
                                  u32 nkv, u32 hd, u32 pos, float scale) {
    qk<true>(q, k, s, n, ctx, nh, nkv, hd, pos, scale);
}

template <bool H>
__device__ void softmax(const float* s, float* p, u32 ctx) {
    __shared__ float sh[GRETA_BLOCK];
    const float* r = s + (size_t)blockIdx.x * ctx;
    float* o = p + (size_t)blockIdx.x * ctx;
    float ninf = greta_neg_inf();
    float m = ninf;
    for (u32 j = threadIdx.x; j < ctx; j += GRETA_BLOCK) m = (r[j] > m) ? r[j] : m;
    m = greta_block_max(m, sh);
    if (m == ninf) {  // fully masked row: all zero
        for (u32 j = threadIdx.x; j < ctx; j += GRETA_BLOCK) o[j] = 0.0f;
        return;
    }
    float part = 0.0f;
    for (u32 j = threadIdx.x; j < ctx; j += GRETA_BLOCK) {
        float e = (r[j] == ninf) ? 0.0f : expf(r[j] - m);
        o[j] = e;
        part = acc_add<H>(part, e);
    }
    float inv = 1.0f / greta_block_sum(part, sh, H);
    for (u32 j = threadIdx.x; j < ctx; j += GRETA_BLOCK) o[j] = o[j] * inv;
}

extern "C" __global__ void softmax_f32(const float* s, float* p, u32 ctx) { softmax<false>(s, p, ctx); }
extern "C" __global__ void softmax_f16(const float* s, float* p, u32 ctx) { softmax<true>(s, p, ctx); }

#define PV_THREADS 128

template <bool H>
__device__ void pv(const float* p, const float* v, float* o, u32 n, u32 ctx, u32 nh, u32 nkv, u32 hd,
                   u32 pos) {
    u32 e = blockIdx.x * PV_THREADS + threadIdx.x;
    u32 i = blockIdx.y;
    if (e >= nh * hd) return;
    u32 h = e / hd, d = e % hd, kh = h / (nh / nkv);
    const float* pr = p + ((size_t)h * n + i) * ctx;
    float acc = 0.0f;
    for (u32 j = 0; j <= pos + i; j++) acc = acc_add<H>(acc, prod<H>(pr[j], v[(size_t)j * nkv * hd + kh * hd + d]));
    o[(size_t)i * nh * hd + e] = acc;
}

extern "C" __global__ void pv_f32(const float* p, const float* v, float* o, u32 n, u32 ctx, u32 nh,
                                  u32 nkv, u32 hd, u32 pos) {
    pv<false>(p, v, o, n, ctx, nh, nkv, hd, pos);
}
extern "C" __global__ void pv_f16(const float* p, const float* v, float* o, u32 n, u32 ctx, u32 nh,
                                  u32 nkv, u32 hd, u32 pos) {
    pv<true>(p, v, o, n, ctx, nh, nkv, hd, pos);
}

#define FUSED_THREADS 128

// Dynamic shared memory: kv_block scores, then hd accumulators.
template <bool H>
__device__ void attn_fused(const float* q, const float* k, const float* v, float* o, u32 n, u32 ctx,
                           u32 nh, u32 nkv, u32 hd, u32 pos, float scale, u32 blk) {
    extern __shared__ float dyn[];
    float* s = dyn;
    float* acc = dyn + blk;
    __shared__ float st[4];  // m, l, ca, cb
    u32 h = blockIdx.x, i = blockIdx.y, t = threadIdx.x;
    u32 kh = h / (nh / nkv);
    u32 warp = t / GRETA_WARP, nwarps = FUSED_THREADS / GRETA_WARP;
    const float* qv = q + (size_t)i * nh * hd + h * hd;
    u32 last = pos + i + 1;
    float ninf = greta_neg_inf();
    for (u32 d = t; d < hd; d += FUSED_THREADS) acc[d] = 0.0f;
    if (t == 0) { st[0] = ninf; st[1] = 0.0f; }
    __syncthreads();
    for (u32 b0 = 0; b0 < last; b0 += blk) {
        u32 bn = last - b0 < blk ? last - b0 : blk;
        for (u32 jj = warp; jj < bn; jj += nwarps) {
            float dot = warp_dot<H>(qv, k + (size_t)(b0 + jj) * nkv * hd + kh * hd, hd);
            if (t % GRETA_WARP == 0) s[jj] = dot * scale;
        }
        __syncthreads();
        if (t == 0) {
            float bm = ninf;
            for (u32 jj = 0; jj < bn; jj++) bm = s[jj] > bm ? s[jj] : bm;
            st[2] = bm;  // block max, read below
        }
        __syncthreads();
        float bm = st[2];
        for (u32 jj = t; jj < bn; jj += FUSED_THREADS) s[jj] = expf(s[jj] - bm);
        __syncthreads();
        if (t == 0) {
            float bl = 0.0f;
            for (u32 jj = 0; jj < bn; jj++) bl = acc_add<H>(bl, s[jj]);
            float m = st[0];
            float nm = bm > m ? bm : m;
            float ca = expf(m - nm), cb = expf(bm - nm);
            float l = st[1] * ca;
            l = H ? greta_round_half(l) : l;
            float lb = bl * cb;
            lb = H ? greta_round_half(lb) : lb;
            st[1] = acc_add<H>(l, lb);
            st[0] = nm;
            st[2] = ca;
            st[3] = cb;
        }
        __syncthreads();
        float ca = st[2], cb = st[3];
        for (u32 d = t; d < hd; d += FUSED_THREADS) {
            float bacc = 0.0f;
            for (u32 jj = 0; jj < bn; jj++)
                bacc = acc_add<H>(bacc, prod<H>(s[jj], v[(size_t)(b0 + jj) * nkv * hd + kh * hd + d]));
            float a = acc[d] * ca, b = bacc * cb;
            if (H) { a = greta_round_half(a); b = greta_round_half(b); }
            acc[d] = acc_add<H>(a, b);
        }
        __syncthreads();
    }
    float inv = 1.0f / st[1];
    for (u32 d = t; d < hd; d += FUSED_THREADS) o[(size_t)i * nh * hd + h * hd + d] = acc[d] * inv;
}

extern "C" __global__ void attn_fused_f32(const float* q, const float* k, const float* v, float* o, u32 n,
                                          u32 ctx, u32 nh, u32 nkv, u32 hd, u32 pos, float scale, u32 blk) {
    attn_fused<false>(q, k, v, o, n, ctx, nh, nkv, hd, pos, scale, blk);
}
extern "C" __global__ void attn_fused_f16(const float* q, const float* k, const float* v, float* o, u32 n,
                                          u32 ctx, u32 nh, u32 nkv, u32 hd, u32 pos, float scale, u32 blk) {
    attn_fused<true>(q, k, v, o, n, ctx, nh, nkv, hd, pos, scale, blk);
}

// Split fused route, first half. Grid (key blocks of the longest row, n, nh), FUSED_THREADS threads, dynamic
// shared memory: kv_block floats. part: [n, nh, nkb, 2 + hd] floats, per key block: block max, block sum,
// block accumulator [hd]; key blocks past a row's last key are not written (attn_merge stops before them).
template <bool H>
__device__ void attn_part(const float* q, const float* k, const float* v, float* part, u32 n, u32 ctx,
                          u32 nh, u32 nkv, u32 hd, u32 pos, float scale, u32 blk, u32 nkb) {
    extern __shared__ float dyn[];
    float* s = dyn;
    __shared__ float st[1];
    u32 b = blockIdx.x, i = blockIdx.y, h = blockIdx.z, t = threadIdx.x;
    u32 last = pos + i + 1;
    u32 b0 = b * blk;
    if (b0 >= last) return;  // uniform per block
    u32 bn = last - b0 < blk ? last - b0 : blk;
    u32 kh = h / (nh / nkv);
    u32 warp = t / GRETA_WARP, nwarps = FUSED_THREADS / GRETA_WARP;
    const float* qv = q + (size_t)i * nh * hd + h * hd;
    float ninf = greta_neg_inf();
    for (u32 jj = warp; jj < bn; jj += nwarps) {
        float dot = warp_dot<H>(qv, k + (size_t)(b0 + jj) * nkv * hd + kh * hd, hd);
        if (t % GRETA_WARP == 0) s[jj] = dot * scale;
    }
    __syncthreads();
    if (t == 0) {
        float bm = ninf;
        for (u32 jj = 0; jj < bn; jj++) bm = s[jj] > bm ? s[jj] : bm;
        st[0] = bm;
    }
    __syncthreads();
    float bm = st[0];
    for (u32 jj = t; jj < bn; jj += FUSED_THREADS) s[jj] = expf(s[jj] - bm);
    __syncthreads();
    float* out = part + (((size_t)i * nh + h) * nkb + b) * (2 + hd);
    if (t == 0) {
        float bl = 0.0f;
        for (u32 jj = 0; jj < bn; jj++) bl = acc_add<H>(bl, s[jj]);
        out[0] = bm;
        out[1] = bl;
    }
    for (u32 d = t; d < hd; d += FUSED_THREADS) {
        float bacc = 0.0f;
        for (u32 jj = 0; jj < bn; jj++)
            bacc = acc_add<H>(bacc, prod<H>(s[jj], v[(size_t)(b0 + jj) * nkv * hd + kh * hd + d]));
        out[2 + d] = bacc;
    }
}

// Split fused route, second half. Grid (nh, n), FUSED_THREADS threads: thread d folds the row's key blocks
// in order into (m, l, acc[d]) exactly as attn_fused's thread 0 and thread d do, then out = acc * (1/l).
template <bool H>
__device__ void attn_merge(const float* part, float* o, u32 nh, u32 hd, u32 pos, u32 blk, u32 nkb) {
    u32 h = blockIdx.x, i = blockIdx.y;
    u32 last = pos + i + 1;
    u32 nb = (last + blk - 1) / blk;
    const float* pr = part + ((size_t)i * nh + h) * nkb * (2 + hd);
    float ninf = greta_neg_inf();
    for (u32 d = threadIdx.x; d < hd; d += FUSED_THREADS) {
        float m = ninf, l = 0.0f, acc = 0.0f;
        for (u32 b = 0; b < nb; b++) {
            const float* e = pr + (size_t)b * (2 + hd);
            float bm = e[0], bl = e[1];
            float nm = bm > m ? bm : m;
            float ca = expf(m - nm), cb = expf(bm - nm);
            float ll = l * ca;
            ll = H ? greta_round_half(ll) : ll;
            float lb = bl * cb;
            lb = H ? greta_round_half(lb) : lb;
            l = acc_add<H>(ll, lb);
            m = nm;
            float a = acc * ca, c = e[2 + d] * cb;
            if (H) { a = greta_round_half(a); c = greta_round_half(c); }
            acc = acc_add<H>(a, c);
        }
        float inv = 1.0f / l;
        o[(size_t)i * nh * hd + h * hd + d] = acc * inv;
    }
}

extern "C" __global__ void attn_part_f32(const float* q, const float* k, const float* v, float* part, u32 n,
                                         u32 ctx, u32 nh, u32 nkv, u32 hd, u32 pos, float scale, u32 blk,
                                         u32 nkb) {
    attn_part<false>(q, k, v, part, n, ctx, nh, nkv, hd, pos, scale, blk, nkb);
}
extern "C" __global__ void attn_part_f16(const float* q, const float* k, const float* v, float* part, u32 n,
                                         u32 ctx, u32 nh, u32 nkv, u32 hd, u32 pos, float scale, u32 blk,
                                         u32 nkb) {
    attn_part<true>(q, k, v, part, n, ctx, nh, nkv, hd, pos, scale, blk, nkb);
}
extern "C" __global__ void attn_merge_f32(const float* part, float* o, u32 nh, u32 hd, u32 pos, u32 blk,
                                          u32 nkb) {
    attn_merge<false>(part, o, nh, hd, pos, blk, nkb);
}
extern "C" __global__ void attn_merge_f16(const float* part, float* o, u32 nh, u32 hd, u32 pos, u32 blk,
                                          u32 nkb) {
    attn_merge<true>(part, o, nh, hd, pos, blk, nkb);
}
